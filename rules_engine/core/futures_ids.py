"""The shapes of Kraken Futures product ids, upper case: the one definition the core (`price_of`),
the pair registry (`rules_engine.pairs`), the rule checks and the rule tests all use."""

from __future__ import annotations

import re

FUTURES_PRODUCT_ID = re.compile(r"^[A-Z]{2}_[A-Z0-9_]+$")
"""The shape of a Kraken Futures product id (`PF_XBTUSD`): a name that is no spot pair but may be
a futures symbol."""
FUTURES_PREFIXED = re.compile(r"^(PF|PI|PV|FF|FI|FV)_[A-Z0-9_]+$")
"""A Kraken Futures product id by its prefix: what a bare symbol names on the futures market
(`price_of('PF_XBTUSD')`, a rule test's tick). Perpetuals PF_/PI_/PV_ and fixed maturities
FF_/FI_/FV_, which carry their expiry (`FI_XBTUSD_260327`)."""
