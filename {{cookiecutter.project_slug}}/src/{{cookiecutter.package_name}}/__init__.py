"""A realtime websocket service built on Falcon."""
