"""``ie-notifyd``: the notification service (catches up from the outbox on start).

Running as a service it writes its pid file (``--pidfile``, default ``ie-notifyd.pid``
next to ie-filterd's), refuses to start when another ie-notifyd runs on it, and
``ie-config stop`` stops it with ie-filterd.  ``--once`` (cron) writes none."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from ie_core import IeError, create_app, pidfile
from ie_core.db import describe_error, migrate
from ie_plugins.notify.service import Notifier

log = logging.getLogger("ie.notify")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ie-notifyd", description=__doc__)
    parser.add_argument("--config", help="configuration file (default /etc/ie/ie.toml)")
    parser.add_argument("--once", action="store_true",
                        help="do one round (events, due digests, sending) and exit")
    parser.add_argument("--pidfile", help="pid file (default: ie-notifyd.pid next to "
                        "ie-filterd's, /run/ie as root)")
    args = parser.parse_args(argv)
    pid_path: Path | None = None
    try:
        app = create_app(args.config)
        logging.basicConfig(stream=sys.stderr, level=app.config.get("ie.log_level").upper(),
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("alembic").setLevel(logging.WARNING)  # its schema check's chatter
        migrate.check(app.db, hooks=app.hooks)
        if not args.once:
            pid_path = (Path(args.pidfile) if args.pidfile
                        else pidfile.default_path(app, pidfile.NOTIFYD))
            pidfile.claim(pid_path, pidfile.NOTIFYD)
        notifier = Notifier(app)
    except (IeError, OSError) as err:
        print(f"ie-notifyd: {err}", file=sys.stderr)
        return 2
    except SQLAlchemyError as err:  # unreachable server, malformed ie.database_url...
        print(f"ie-notifyd: {describe_error(err)}", file=sys.stderr)
        return 2
    try:
        if args.once:
            report = notifier.run_once()
            notifier.delivery.close()
            return 0 if not report.deferred and not report.failed else 1
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: notifier.stop())
        notifier.serve()
        return 0
    finally:
        if pid_path is not None:
            pidfile.release(pid_path)
        app.close()


if __name__ == "__main__":
    sys.exit(main())
