"""``snnbalance plugins``: what is installed, what each plugin provides, its options, and what failed.

Plain lines, not a table: a table shrinks every name to ``snnbalance.norma…`` at 80 columns.
``--json`` prints the same facts for programs (as ``llm plugins`` does).
"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape

KINDS = (("Normalizer", "normalizers"), ("Simulator", "simulators"), ("Dataset", "datasets"))


def _record(kind: str, key: str, rec, plugin: str) -> dict:
    """One normalizer, simulator or dataset as plain data."""
    out = {"name": key, "plugin": plugin, "description": rec.description}
    if kind == "Normalizer":
        out |= {"needs_calibration": bool(rec.needs_calibration), "options": dict(rec.options or {})}
    elif kind == "Simulator":
        out |= {"devices": list(rec.devices), "options": dict(getattr(rec, "options", None) or {})}
        if key == "spikingjelly":
            from ..simulate import native  # builds the kernel on first use (cached): the status is real

            out["native_engine"] = native.status().describe()
    return out


def plugins_data(reg) -> dict:
    """Everything ``snnbalance plugins`` shows, as JSON-ready data (``unavailable``: the optional
    parts whose extra is not installed)."""
    from ..extras import PARTS, missing

    plugins = []
    for name, plugin in reg.pm.list_name_plugin():
        plugins.append(
            {
                "name": name,
                "distribution": reg.dists.get(name, "?"),
                "builtin": name in reg.builtin,
                "hooks": sorted(h.name for h in reg.pm.get_hookcallers(plugin) or []),
                "provides": [
                    {"kind": kind.lower(), "name": key}
                    for kind, attr in KINDS
                    for key in getattr(reg, attr)
                    if reg.provider.get((kind, key)) == name
                ],
            }
        )
    out = {"plugins": plugins}
    for kind, attr in KINDS:
        out[attr] = [_record(kind, key, rec, reg.provider.get((kind, key), "?")) for key, rec in getattr(reg, attr).items()]
    out["problems"] = [{"plugin": p.plugin, "reason": p.reason} for p in reg.problems]
    out["unavailable"] = [
        {"module": m, "extra": PARTS[m].extra, "for": PARTS[m].used_for, "install": PARTS[m].install()} for m in missing()
    ]
    return out


def _describe(console: Console, kind: str, rec: dict) -> None:
    """One record: description, where it comes from, and each option with its meaning."""
    flag = {"Normalizer": "--normalizer", "Simulator": "--simulator", "Dataset": "--dataset"}[kind]
    options = rec.get("options") or {}
    extra = [f"plugin {rec['plugin']}"] + (["needs calibration data"] if rec.get("needs_calibration") else [])
    extra += [f"devices: {', '.join(rec['devices'])}"] if "devices" in rec else []
    usage = f"{rec['name']}[:{','.join(f'{o}=VALUE' for o in options)}]" if options else rec["name"]
    console.print(f"\n[bold]{escape(rec['name'])}[/]  [dim]({escape('; '.join(extra))})[/]", soft_wrap=True)
    console.print(f"  {escape(rec['description'])}")
    console.print(f"  usage: {flag} {escape(usage)}", soft_wrap=True)
    width = max((len(o) for o in options), default=0)
    for opt, text in options.items():
        console.print(f"    [cyan]{escape(opt.ljust(width))}[/]  {escape(text)}")
    if "native_engine" in rec:
        console.print(f"  {escape(rec['native_engine'])}")


def plugins_command(
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON on stdout."),
) -> None:
    """List installed plugins: name, distribution, hooks, the normalizers, simulators and datasets
    they provide with their options, and any plugin that was skipped and why."""
    from ..plugins import registry

    reg = registry()
    data = plugins_data(reg)
    if as_json:
        typer.echo(json.dumps(data, indent=1))
        return
    console = Console(highlight=False)
    console.print("[bold underline]Plugins[/]")
    for p in data["plugins"]:
        dist = p["distribution"]
        console.print(f"\n[bold]{escape(p['name'])}[/]  [dim]({escape(dist)})[/]", soft_wrap=True)
        console.print(f"  hooks: {escape(', '.join(p['hooks']) or 'none')}", soft_wrap=True)
        provides = ", ".join(f"{x['kind']} {x['name']}" for x in p["provides"]) or "nothing"
        console.print(f"  provides: {escape(provides)}", soft_wrap=True)
    for kind, attr in KINDS:
        console.print(f"\n[bold underline]{kind}s[/]")
        for rec in data[attr]:
            _describe(console, kind, rec)
    if data["unavailable"]:
        console.print("\n[bold underline]Not installed[/]")
        for part in data["unavailable"]:
            console.print(f"  {escape(part['for'])}: {escape(part['install'])}", soft_wrap=True)
    console.print()
    console.print(
        "[dim]Options: --normalizer NAME:key=value,key=value. Load only some plugins: "
        "SNNBALANCE_PLUGINS=a,b; skip one: SNNBALANCE_BLOCK_PLUGINS=name.[/]"
    )
    err = Console(stderr=True, highlight=False)
    for problem in reg.problems:
        err.print(f"[yellow]warning:[/] {escape(str(problem))}", soft_wrap=True)
