from decimal import Decimal

from rules_engine.core.events import Tick, make_tick


def test_the_hot_path_tick_maker_builds_the_same_tick_as_the_constructor():
    price = Decimal("70000.1")
    made = make_tick("XBTUSD", "spot", 1.5, price, Decimal(1), None, 2.0)
    built = Tick("XBTUSD", "spot", 1.5, price, Decimal(1), None, 2.0)
    assert type(made) is Tick and made == built and hash(made) == hash(built) and repr(made) == repr(built)
    assert list(vars(made)) == list(vars(built))
