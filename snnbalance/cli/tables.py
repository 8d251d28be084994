"""A library :class:`~snnbalance.tables.Table` rendered with Rich (the commands' one table renderer)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Collection

if TYPE_CHECKING:
    import rich.table

    from ..tables import Table


def rich_table(table: Table, *, no_wrap: Collection[str] = ()) -> rich.table.Table:
    """``table`` as a Rich table: its title, caption, header and alignment.

    Args:
        table: the cells, from the library.
        no_wrap: columns never folded onto a second line (the names that identify a row).
    """
    import rich.table

    out = rich.table.Table(title=table.title or None, caption=table.caption or None)
    for name, align in zip(table.columns, table.align):
        out.add_column(name, justify="right" if align == "r" else "left", no_wrap=name in no_wrap)
    for row in table.rows:
        out.add_row(*row)
    return out
