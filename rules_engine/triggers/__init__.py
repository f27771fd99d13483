"""Trigger types: one module per type (`price.py` is the `price` trigger).

A module holds everything about its type and declares it as `TYPE = TriggerType(...)`
(`rules_engine.registry`): its JSON Schema fragment, its spec (a frozen dataclass deriving from
`rules_engine.core.model.TriggerSpec`), its builder, the expression names it provides, what it
needs from the service (feeds, timers, signal sources) and its watcher (the engine-side
matching, a `rules_engine.core.watch.Watcher`). The registry finds the modules by scanning this
package; modules whose name starts with `_` are helpers shared by several types.
"""
