"""ate: an asyncio test executive for ESP32 production lines.

Package layout, imports pointing downward only:
cli -> scheduler, sequence -> drivers, sim -> protocol, config, model.
"""

__version__ = "0.1.0"
