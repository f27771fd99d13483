"""Action types: one module per type (`place_order.py` is the `place_order` action).

A module holds everything about its type and declares it as `TYPE = ActionType(...)`
(`rules_engine.registry`): its JSON Schema fragment, its spec (a frozen dataclass deriving from
`rules_engine.core.model.ActionSpec`), its builder, what it needs from the service, and its run
function (the spec's `run`, which turns the spec and its evaluated fields into intents from
`rules_engine.core.intents` through the core's `ActionRun`). The registry finds the modules by
scanning this package; modules whose name starts with `_` are helpers shared by several types.
"""
