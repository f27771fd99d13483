"""Offline runs of the engine core: the loop shared by rule tests and replays (`runner`),
what each rule did (`outcomes`), and recorded market data as ticks (`data`)."""
