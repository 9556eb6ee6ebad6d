"""`herald-stack install|up|down|status|env|token`: the local stack behind `make up` and the tests.

`herald-stack token --as dana@acme.example --group acme-marketing` prints a person's token from the local
identity provider (for `curl -H "Authorization: Bearer …"` or `HERALD_TOKEN`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from herald_core.bus import ensure_topics
from herald_core.settings import CommonSettings
from herald_core.signing import generate_keypair
from herald_stack.components import StackError, components, tools
from herald_stack.config import StackConfig
from herald_stack.identity import ensure_identities, mint

GUARD_KEY_ID = "guard-local-1"


def install(cfg: StackConfig) -> None:
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)
    # the downloads and the Weaviate build are independent: run them side by side
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(c.install) for c in [*components(cfg), *tools(cfg)]]:
            future.result()


def up(cfg: StackConfig, *, topics: bool = True) -> None:
    install(cfg)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(c.start) for c in components(cfg)]:
            future.result()
    generate_keypair(cfg.keys_dir, GUARD_KEY_ID)
    ensure_identities(cfg)
    if topics:
        common = CommonSettings(kafka_bootstrap=cfg.kafka_bootstrap, pg_dsn=cfg.pg_dsn)
        asyncio.run(ensure_topics(common))
    print(
        f"stack up in {time.monotonic() - started:.1f}s: kafka {cfg.kafka_bootstrap}, postgres {cfg.pg_dsn}, "
        f"weaviate http :{cfg.weaviate_http_port} grpc :{cfg.weaviate_grpc_port}, smtp :{cfg.smtp_port} "
        f"(mail in {cfg.maildir}), caldav {cfg.caldav_url}"
    )


def down(cfg: StackConfig) -> None:
    for component in reversed(components(cfg)):
        component.stop()
    print("stack down")


def status(cfg: StackConfig) -> int:
    code = 0
    for component in components(cfg):
        ok = component.healthy()
        code |= 0 if ok else 1
        print(f"{component.name:9} {'up' if ok else 'down'}")
    return code


def main() -> None:
    parser = argparse.ArgumentParser(prog="herald-stack", description=__doc__)
    parser.add_argument("command", choices=["install", "up", "down", "status", "env", "token"])
    parser.add_argument("--as", dest="subject", default="dana@acme.example", help="token: who signs in")
    parser.add_argument("--group", dest="groups", action="append", default=[], help="token: a group (repeat)")
    parser.add_argument("--minutes", type=int, default=60, help="token: how long it is valid")
    args = parser.parse_args()
    cfg = StackConfig()
    try:
        if args.command == "install":
            install(cfg)
        elif args.command == "up":
            up(cfg)
        elif args.command == "down":
            down(cfg)
        elif args.command == "status":
            sys.exit(status(cfg))
        elif args.command == "token":
            print(mint(cfg, args.subject, args.groups, seconds=args.minutes * 60))
        else:
            for key, value in cfg.env().items():
                print(f"export {key}={value}")
    except StackError as exc:
        print(f"herald-stack {args.command}: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
