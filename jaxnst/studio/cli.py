"""``jaxnst serve``: start the studio (a local web page that runs and shows style transfer).

    jaxnst serve [--host 127.0.0.1] [--port 8000] [--results DIR] [--token TOKEN]
                 [--compile-cache DIR | --no-compile-cache]

It listens on 127.0.0.1 unless told otherwise; on any other address every request must carry a
token (``--token``, or one generated and printed once). From another machine, tunnel the port:
``ssh -L 8000:localhost:8000 HOST``, then open http://localhost:8000/. The web libraries are the
optional extra ``jaxnst[studio]``; this module imports them only when it runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import secrets
import socket
import sys
from pathlib import Path
from typing import NoReturn

EXIT_BAD_INPUT = 2
NEEDS = ("starlette", "uvicorn", "sse_starlette", "multipart")
INSTALL = "jaxnst: error: the studio needs: pip install 'jaxnst[studio]'"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


EPILOG = """\
examples:
  jaxnst serve                               then open the address it prints (localhost:8000)
  jaxnst serve --port 0 --results ~/nst      any free port; results and history in ~/nst
  jaxnst serve --host 0.0.0.0                other machines may connect, with the token printed
  ssh -L 8000:localhost:8000 HOST            on your machine, for a studio on HOST: a tunnel,
                                             then open http://localhost:8000/"""


def build_parser() -> argparse.ArgumentParser:
    from jaxnst.cli.flags import HelpFormatter, add_cache_flags

    p = _Parser(
        prog="jaxnst serve",
        description="The studio: a local web page that runs style "
        "transfer and shows the descent live, with sweeps and a history of results.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    net = p.add_argument_group("network", "where the page is served and who may use it")
    net.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; any other needs a token)",
    )
    net.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any free)")
    jobs = p.add_argument_group("jobs and results", "what a page may ask for and where it goes")
    jobs.add_argument(
        "--results",
        default="jaxnst-results",
        metavar="DIR",
        help="folder for results and their history (default: ./jaxnst-results)",
    )
    net.add_argument(
        "--token",
        help="require this token on every request (generated and printed "
        "when serving on a non-loopback address without one)",
    )
    jobs.add_argument(
        "--models",
        metavar="DIR",
        help="a folder of trained networks (jaxnst train's .jaxnst files) the page offers as "
        "instant presets",
    )
    jobs.add_argument(
        "--max-size",
        type=int,
        default=None,
        metavar="PX",
        help="largest output size a page may ask for (default: 2048)",
    )
    cache = p.add_argument_group("compiling", "the warm-up and the persistent compile cache")
    cache.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="take jobs at once instead of first compiling the default job's programs (a few "
        "seconds with a warm compile cache, tens without; a first job at the defaults then "
        "starts without compiling)",
    )
    add_cache_flags(cache)  # jobs load their programs from it (fill it with `jaxnst warmup`)
    return p


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def missing_modules() -> list[str]:
    """The studio's libraries that cannot be imported here."""
    missing = []
    for m in NEEDS:
        try:
            found = importlib.util.find_spec(m) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(m)
    return missing


def access_token(host: str, token: str | None) -> tuple[str | None, bool]:
    """(the token every request must carry, whether it was generated here): the given one, else a
    new random one when ``host`` is not a loopback address, else None."""
    if token is None and not is_loopback(host):
        return secrets.token_urlsafe(24), True
    return token, False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise SystemExit(
            f"jaxnst: error: cannot listen on {host}:{port} ({e.strerror or e})"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str]) -> int:
    """Run the studio until Ctrl-C. Returns the exit code (2: bad input or missing extra)."""
    args = build_parser().parse_args(argv)
    if missing_modules():
        print(INSTALL, file=sys.stderr)
        return EXIT_BAD_INPUT
    if not 0 <= args.port < 65536:
        print(f"jaxnst: error: --port must be 0..65535, got {args.port}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.token is not None and len(args.token) < 8:
        print("jaxnst: error: --token must be at least 8 characters", file=sys.stderr)
        return EXIT_BAD_INPUT
    token, generated = access_token(args.host, args.token)
    results = Path(args.results).expanduser()
    try:
        results.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"jaxnst: error: --results {results}: {e.strerror or e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.models is not None and not Path(args.models).expanduser().is_dir():
        print(f"jaxnst: error: --models {args.models}: not a folder", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        sock = _bind(args.host, args.port)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return EXIT_BAD_INPUT
    import uvicorn

    from jaxnst.cli import runtime
    from jaxnst.studio.app import create_app

    runtime.enable_compile_cache(runtime.compile_cache_dir(args), quiet=False)
    from jaxnst.studio.forms import Limits

    limits = Limits() if args.max_size is None else Limits(max_size=args.max_size)
    app = create_app(results, token=token, limits=limits, warmup=args.warmup, models=args.models)
    port = sock.getsockname()[1]
    shown = (
        "localhost"
        if is_loopback(args.host)
        else socket.gethostname()
        if args.host in ("0.0.0.0", "::", "[::]")
        else args.host
    )
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"jaxnst: studio at {url} (results in {results}; Ctrl-C to stop)", file=sys.stderr)
    if generated:
        print(
            "jaxnst: the token above was generated for this run; every request needs it",
            file=sys.stderr,
        )
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then re-raises Ctrl-C
        pass
    print("jaxnst: studio stopped", file=sys.stderr)
    return 0
