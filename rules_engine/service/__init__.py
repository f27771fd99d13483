"""Service adapters around the pure core: signal webhook, timers, kill switch."""
