"""`rules-engine demo`: the simulator and the engine on the example rules, narrated."""

from rules_engine.demo.scenario import run_demo

__all__ = ["run_demo"]
