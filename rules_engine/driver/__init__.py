"""The one engine loop every mode runs: `Driver` (events in, intents out, results back),
`CommitLane` (commit-then-send) and `Timetable` (timer slots). See `driver.py`."""

from rules_engine.driver.driver import Driver, DriverObserver
from rules_engine.driver.lane import CommitLane, Job
from rules_engine.driver.timetable import MissedSlot, Timetable

__all__ = ["CommitLane", "Driver", "DriverObserver", "Job", "MissedSlot", "Timetable"]
