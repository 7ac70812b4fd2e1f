"""How flash results are shown: problems, then a summary table."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from host_tools.flash.flasher import FlashResult


def print_problems(res: FlashResult, console: Console) -> None:
    for p in res.problems:
        colour = "yellow" if p.warning else "red"
        console.print(f"[{colour}]{p}[/]", highlight=False)


def summary_lines(r: FlashResult) -> str:
    """One device's outcome, for a person at the roadside."""
    online = ("not waited for" if r.ok else "-") if r.online is None else ("yes" if r.online else "NO")
    verdict = "[green]OK[/]" if r.ok else f"[red]FAILED at {r.stage}[/]: {r.reason}"
    return "\n".join([
        f"[bold]{r.device}[/] ({r.role} on {r.board}) via {r.port}",
        f"  firmware  {r.fw_version or '-'}",
        f"  deploy    {r.deploy or '-'}",
        f"  files     {r.copied} copied ({r.bytes_copied / 1024:.1f} KiB), {r.unchanged} unchanged, {r.removed} removed",
        f"  online    {online}",
        f"  time      {r.seconds:.1f} s",
        f"  result    {verdict}",
    ])


def summary_table(results: list[FlashResult], title: str = "flash summary") -> Table:
    t = Table(title=title)
    for col in ("device", "board", "role", "port", "firmware", "copied", "unchanged", "removed", "KiB",
                "online", "time", "result"):
        t.add_column(col, justify="right" if col in ("copied", "unchanged", "removed", "KiB", "time") else "left")
    for r in results:
        online = "-" if r.online is None else ("yes" if r.online else "NO")
        result = "[green]ok[/]" if r.ok else f"[red]FAILED at {r.stage}[/]: {r.reason}"
        t.add_row(r.device, r.board, r.role, r.port, r.fw_version, str(r.copied), str(r.unchanged),
                  str(r.removed), f"{r.bytes_copied / 1024:.1f}", online, f"{r.seconds:.1f}s", result)
    return t
