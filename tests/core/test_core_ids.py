"""Client order ids: the same rule's first fire on two key cells of one store gets two ids;
a state dir's ids (no key) are unchanged."""

from __future__ import annotations

import uuid

from rules_engine.core.ids import cell_installation, client_order_id, installation_tag

INSTALLATION = "0123456789abcdef0123456789abcdef"


def test_the_key_cell_part_makes_ids_differ_across_keys_and_keeps_the_installation_tag() -> None:
    a, b = cell_installation(INSTALLATION, "acct-1"), cell_installation(INSTALLATION, "acct-2")
    assert len(a) == len(b) == 32 and a != b and a != INSTALLATION
    assert cell_installation(INSTALLATION, "acct-1") == a  # deterministic: every engine of the key agrees
    first = {key: client_order_id("follow", 1, 0, inst) for key, inst in (("a", a), ("b", b))}
    assert first["a"] != first["b"]
    assert installation_tag(first["a"]) == installation_tag(first["b"]) == INSTALLATION[:8]
    assert all(uuid.UUID(value).version == 5 for value in first.values())


def test_a_state_dir_id_is_unchanged() -> None:
    # the state dir's form (no key): the installation id itself is the namespace, as before
    expected = INSTALLATION[:8] + str(uuid.uuid5(uuid.UUID(hex=INSTALLATION), "follow\x1f1\x1f0"))[8:]
    assert client_order_id("follow", 1, 0, INSTALLATION) == expected


def test_an_id_with_an_installation_is_the_standard_uuid5_in_its_namespace() -> None:
    import uuid

    for installation in (INSTALLATION, INSTALLATION.upper(), "0" * 32, "f" * 32):
        for rule_id, seq, index in (("r", 1, 0), ("flip", 99, 2), ("é-rule", 7, 1)):
            expected = str(uuid.uuid5(uuid.UUID(hex=installation), f"{rule_id}\x1f{seq}\x1f{index}"))
            assert client_order_id(rule_id, seq, index, installation) == installation[:8].lower() + expected[8:]
