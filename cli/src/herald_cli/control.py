"""`herald kill-switch on|off [--tenant T]`: publish the change and return once it is committed."""

from __future__ import annotations

import getpass

from rich.console import Console

from herald_core.bus import TransactionalProducer
from herald_core.control import kill_switch_message
from herald_core.settings import CommonSettings

SOURCE = "herald/cli"


async def set_kill_switch(
    common: CommonSettings, tenant: str | None, engaged: bool, reason: str, by: str | None, console: Console
) -> int:
    if not reason.strip():
        console.print("[red]--reason must say why[/red]")
        return 1
    out = kill_switch_message(tenant, engaged, reason, by or getpass.getuser(), SOURCE)
    producer = TransactionalProducer(common, "cli", name=f"control-{out.envelope.id}")
    await producer.start()
    try:
        await producer.publish([out])
    finally:
        await producer.stop()
    scope = f"tenant {tenant}" if tenant else "every tenant"
    console.print(f"kill switch {'ON' if engaged else 'off'} for {scope}: {reason}", highlight=False)
    return 0
