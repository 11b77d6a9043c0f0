"""The link from an error to its section of the errors page (``exc.docs_url``,
``docs_url_for(cls)``), which every class in ``workflowkit.errors`` carries as its ``slug``."""

from __future__ import annotations

from typing import ClassVar

# The one place the documentation's address lives; each error's section is an anchor on it.
DOCS_BASE = "https://workflowkit.dev/errors/"


def docs_url_for(cls: type[BaseException]) -> str | None:
    """The errors page section about ``cls``, or None for exceptions that are not ours."""
    slug = getattr(cls, "slug", None)
    return f"{DOCS_BASE}#{slug}" if isinstance(slug, str) else None


def with_docs_link(exc: BaseException) -> str:
    """``str(exc)`` followed by the link to its section, for messages shown to people."""
    url = docs_url_for(type(exc))
    return f"{exc} (see {url})" if url else str(exc)


class Documented:
    """Gives an error class the URL of its section on the errors page."""

    slug: ClassVar[str]

    @property
    def docs_url(self) -> str:
        return f"{DOCS_BASE}#{self.slug}"
