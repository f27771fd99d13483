"""rules-engine: declarative YAML trading rules for the Kraken exchange."""

__version__ = "0.1.0"
