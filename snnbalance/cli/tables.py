"""A library :class:`~snnbalance.tables.Table` rendered with Rich (the commands' one table renderer)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Collection

if TYPE_CHECKING:
    import rich.table

    from ..tables import Table


def rich_table(table: Table, *, no_wrap: Collection[str] = (), width: int | None = None) -> rich.table.Table:
    """``table`` as a Rich table: its title, caption, header and alignment.

    Args:
        table: the cells, from the library.
        no_wrap: columns kept on one line (the names that identify a row) when the table fits in
            ``width`` that way; otherwise they fold and the numbers keep their full width.
        width: the console's width (``None``: do not check).
    """
    import rich.table

    out = rich.table.Table(title=table.title or None, caption=table.caption or None)
    cells = [max([len(c) for c in [name, *(row[i] for row in table.rows)]]) for i, name in enumerate(table.columns)]
    numbers = [max((len(row[i]) for row in table.rows), default=0) if a == "r" else 0 for i, a in enumerate(table.align)]
    border = 3 * len(table.columns) + 1  # Rich's heavy box: 3 characters per column, plus 1
    # the row names stay on one line when everything fits that way; the numbers are never cut to
    # "100.…" when they fit beside names of 8 characters (the names and headers wrap instead)
    fits = width is None or sum(cells) + border <= width
    keep_numbers = width is None or sum(numbers) + border + 8 * table.align.count("l") <= width
    for name, align, widest in zip(table.columns, table.align, numbers):
        out.add_column(
            name,
            justify="right" if align == "r" else "left",
            no_wrap=name in no_wrap and fits,
            overflow="fold",
            min_width=widest if align == "r" and keep_numbers else None,
        )
    for row in table.rows:
        out.add_row(*row)
    return out
