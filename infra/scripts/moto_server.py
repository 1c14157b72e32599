#!/usr/bin/env python3
"""moto's server (the AWS emulator) in one thread.

`moto_server` serves each request on its own thread, and its DynamoDB conditional writes are a
check followed by a write with no lock between them: two concurrent `PutItem`s conditioned on
the same version can both succeed, which real DynamoDB never allows. Served from one thread,
every request is atomic, as DynamoDB's conditional writes are, so the concurrency tests test
our code rather than the emulator's races. (Single-threaded werkzeug also answers HTTP/1.0, so
an idle keep-alive connection cannot hold the server.)

    python infra/scripts/moto_server.py --host 127.0.0.1 --port PORT
"""

import argparse

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, app, threaded=False, use_reloader=False, use_debugger=False)


if __name__ == "__main__":
    main()
