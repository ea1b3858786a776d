"""`tmt-serve`: an HTTP translation server (LibreTranslate's API, our own, a page, metrics).

`models` and `batching` need only the core install; `app` and `server` import FastAPI, uvicorn
and prometheus_client (the `.[serve]` extra), and only `commands/serve.py` imports them, inside
its `main`, so `import transformer` never pulls them in.
"""
