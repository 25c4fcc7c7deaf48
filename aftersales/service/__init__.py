"""The long-running services: `serve-webhook` (an ASGI app under uvicorn) and what
`project --follow` shares with it (JSON log lines, metrics)."""
