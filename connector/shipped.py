"""Data shipped beside the code: found inside the package when installed, in the checkout otherwise.

The reviewed mappings (``mappings/``) and the demo feeds (``examples/feeds/``) live at the top
of the repository, where analysts and new users look for them. A wheel carries them inside the
package (``pyproject.toml``'s ``package-dir``); a source tree or an editable install reads them
where they are. Same files either way.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped_dir(packaged: str, checkout: str) -> Path:
    """The directory of shipped data.

    Args:
        packaged: Its path inside the installed package (e.g. ``mappings``).
        checkout: Its path from the repository root (e.g. ``examples/feeds``).

    Returns:
        The packaged copy when the package carries one, else the checkout's.
    """
    inside = _PACKAGE / packaged
    return inside if inside.is_dir() else _PACKAGE.parent / checkout
