"""chatadmin: conversation history for AI chat applications, on MongoDB, with an admin."""

__version__ = "0.1.0"
