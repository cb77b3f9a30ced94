"""The catalog's read and edit operations: what the JSON API and the web pages both call (``Catalog``).

Every list is computed in SQL over the index tables (``catalog.models``) outer-joined with the account table
``repositories`` (visibility, description; no row: public, ""), so that paging and totals count only what the
viewer may see. Visibility (``Viewer.can_see``): a private repository exists only for site admins and members of
its namespace; to everyone else it is indistinguishable from an unknown name (``NotFound``, never ``Forbidden``).
Without an account store (``auth.mode: none``) every repository is public and nothing can be edited.

Search (``search``) matches the name and the description, case-insensitively, and ranks: 0 exact name, 1 the name
or one of its path components starts with the query (``acme/nginx`` for ``ngi``), 2 the name contains it,
3 the description contains it; ties by pull count, then push time (newest first), then name. ``%``, ``_`` and
``\\`` in a query match themselves. An empty query lists every visible repository, newest push first.

Tag details (``tag``) read the manifest and config bytes through the store (``store.manifests.get``,
``store.blobs.read_small``); everything else reads only the database. Pages are 1-based; ``per_page`` is 1 to
``MAX_PER_PAGE`` and ``page`` at most ``MAX_PAGE`` (``InvalidInput`` otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, and_, case, delete, exists, func, literal, or_, select, true, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import aliased

from auth import accounts as acc
from auth.database import WRITE
from auth.models import MembershipRow, NamespaceRow, RepositoryRow, UserRow
from auth.ratelimit import LoginLimiter, throttled
from catalog import imagedetail
from catalog.errors import Forbidden, InvalidInput, NotFound
from catalog.models import IndexedBlobRow, IndexedManifestRow, IndexedRepositoryRow, IndexedTagRow
from catalog.views import (
    ANONYMOUS,
    READ_ONLY,
    HomeView,
    NamespaceView,
    Page,
    Platform,
    RepositoryDetail,
    RepositorySummary,
    TagDetail,
    TagSummary,
    Viewer,
    Visibility,
)
from registry.config import AuthSettings
from registry.errors import RegistryError
from registry.store import Store

__all__ = ["MAX_PAGE", "MAX_PER_PAGE", "MAX_QUERY_LENGTH", "Catalog", "TagListener"]

MAX_PER_PAGE = 100
MAX_PAGE = 100_000
MAX_QUERY_LENGTH = 200
NO_ACCOUNTS = "sign-in is not enabled on this registry"

R = IndexedRepositoryRow
A = RepositoryRow
T = IndexedTagRow
M = IndexedManifestRow
B = IndexedBlobRow


class TagListener(Protocol):
    """Told after the catalog deleted a tag from storage (``catalog.index.Index`` keeps its rows in step)."""

    async def tag_deleted(self, name: str, tag: str) -> None: ...


def _default_limiter(engine: AsyncEngine) -> LoginLimiter:
    """A limiter in the database of ``engine`` with the ``auth.login_failures``/``auth.login_window`` defaults
    (for a catalog without a guard)."""
    defaults = AuthSettings()
    return LoginLimiter(engine, defaults.login_failures, defaults.login_window)


class Catalog:
    """The catalog over one account database (``engine``, holding the index tables too) and one OCI store.

    ``index``: told of tag deletions (else the catalog removes the tag's row itself); ``deletes_enabled``: the
    registry's ``delete_enabled`` setting (a tag can't be deleted from the catalog when the API can't either);
    ``limiter``: the failed-login limits (the app passes the guard's, shared with ``docker login``; by default
    limits with the default settings in ``engine``'s database, shared by every process on it).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        store: Store,
        accounts: acc.AccountStore | None,
        *,
        index: TagListener | None = None,
        deletes_enabled: bool = True,
        limiter: LoginLimiter | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.accounts = accounts
        self.index = index
        self.deletes_enabled = deletes_enabled
        self.limiter = limiter or _default_limiter(engine)

    # -- who asks -------------------------------------------------------------------------------------------

    async def viewer(self, user: str, *, read_only: bool = False) -> Viewer:
        """The viewer for a signed-in ``user`` (``read_only``: by a read-only access token): anonymous without
        accounts or when the user no longer exists."""
        if self.accounts is None:
            return ANONYMOUS
        async with self.engine.connect() as connection:
            account = (await connection.execute(select(UserRow.is_admin).where(UserRow.name == user))).first()
            if account is None:
                return ANONYMOUS
            query = select(MembershipRow.org_name, MembershipRow.role).where(MembershipRow.user_name == user)
            roles = (await connection.execute(query)).all()
        namespaces = frozenset({user, *(org for org, _ in roles)})
        admins = frozenset({user, *(org for org, role in roles if role == "admin")})
        return Viewer(
            name=user, is_admin=bool(account.is_admin), namespaces=namespaces, admins=admins, read_only=read_only
        )

    async def authenticate(self, name: str, secret: str) -> acc.Authenticated | None:
        """Who ``secret`` (a password or personal access token of ``name``) signs in, or None (always None without
        accounts). Unthrottled: sign-ins go through :meth:`sign_in`."""
        if self.accounts is None:
            return None
        return await self.accounts.authenticate(name, secret)

    async def sign_in(self, client: str, name: str, secret: str) -> acc.Authenticated | None:
        """:meth:`authenticate` under the failed-login limits (``auth.ratelimit.throttled``; raises
        ``TooManyLogins``): the web sign-in form and HTTP Basic on the API come through here."""
        return await throttled(self.limiter, client, name, lambda: self.authenticate(name, secret))

    # -- lists ----------------------------------------------------------------------------------------------

    async def home(self, viewer: Viewer, limit: int = 10) -> HomeView:
        """The ``limit`` most recently pushed and most pulled (at least once) visible repositories, and how many
        visible repositories and tags there are."""
        visible = self._visible(viewer)
        recent = self._summaries(visible).order_by(R.pushed_at.desc(), R.name).limit(limit)
        popular = self._summaries(visible, R.pull_count > 0)
        popular = popular.order_by(R.pull_count.desc(), R.pushed_at.desc(), R.name).limit(limit)
        counts = self._from_repositories(func.count(), func.coalesce(func.sum(R.tag_count), 0)).where(visible)
        async with self.engine.connect() as connection:
            recent_rows = (await connection.execute(recent)).mappings().all()
            popular_rows = (await connection.execute(popular)).mappings().all()
            repository_count, tag_count = (await connection.execute(counts)).one()
        return HomeView(
            recent=_summary_list(recent_rows),
            popular=_summary_list(popular_rows),
            repository_count=repository_count,
            tag_count=tag_count,
        )

    async def search(self, viewer: Viewer, query: str, page: int = 1, per_page: int = 25) -> Page[RepositorySummary]:
        """Visible repositories matching ``query``, best first (see the module docstring)."""
        _check_page(page, per_page)
        query = query.strip().lower()
        if len(query) > MAX_QUERY_LENGTH:
            raise InvalidInput(f"the search query is longer than {MAX_QUERY_LENGTH} characters")
        visible = self._visible(viewer)
        if not query:
            return await self._page(visible, (R.pushed_at.desc(), R.name), page, per_page)
        search = _Search(query, self.engine.dialect.name)
        order = (search.rank(), R.pull_count.desc(), R.pushed_at.desc(), R.name)
        return await self._page(and_(visible, search.matches()), order, page, per_page, scan=True)

    async def namespace(self, viewer: Viewer, name: str, page: int = 1, per_page: int = 25) -> NamespaceView:
        """The visible repositories of a user's or organization's namespace, newest push first. ``NotFound`` when
        there is none and no user or organization has that name."""
        _check_page(page, per_page)
        async with self.engine.connect() as connection:
            kind = await connection.scalar(select(NamespaceRow.kind).where(NamespaceRow.name == name))
        found = await self._page(
            and_(self._visible(viewer), R.namespace == name), (R.pushed_at.desc(), R.name), page, per_page
        )
        if found.total == 0 and kind is None:
            raise NotFound(f"no user, organization or repositories called {name!r}")
        return NamespaceView(name=name, kind=kind or "none", repositories=found)

    async def sitemap(self, viewer: Viewer) -> list[str]:  # noqa: ARG002 - the same for everyone, by design
        """The names of the public repositories, sorted: a sitemap is for crawlers, whoever fetches it."""
        query = self._from_repositories(R.name).where(self._visible(ANONYMOUS)).order_by(R.name)
        async with self.engine.connect() as connection:
            return list((await connection.scalars(query)).all())

    # -- one repository -------------------------------------------------------------------------------------

    async def require_visible(self, viewer: Viewer, name: str) -> RepositorySummary:
        """The summary of repository ``name``, or ``NotFound`` if it is unknown or the viewer may not see it."""
        query = self._summaries(self._visible(viewer), R.name == name)
        async with self.engine.connect() as connection:
            row = (await connection.execute(query)).mappings().first()
        if row is None:
            raise NotFound(f"repository {name!r} not found")
        return RepositorySummary.model_validate(dict(row))

    async def repository(self, viewer: Viewer, name: str) -> RepositoryDetail:
        """A repository's page: summary, rendered description, unique and shared sizes, whether the viewer may
        edit it. ``unique_size`` counts the distinct blobs no other repository references, ``shared_size`` the
        others."""
        from catalog.markdown import render  # markdown-it and nh3 load with the first repository page

        summary = await self.require_visible(viewer, name)
        async with self.engine.connect() as connection:
            unique, shared = (await connection.execute(_sizes(name))).one()
        return RepositoryDetail(
            summary=summary,
            description_html=render(summary.description),
            unique_size=unique or 0,
            shared_size=shared or 0,
            can_admin=self._can_admin(viewer, summary.namespace),
        )

    async def tags(self, viewer: Viewer, name: str, page: int = 1, per_page: int = 25) -> Page[TagSummary]:
        """The tags of a visible repository, newest push first, then by name."""
        _check_page(page, per_page)
        await self.require_visible(viewer, name)
        query = _tag_query(T.repository == name).order_by(T.pushed_at.desc(), T.name)
        query = query.limit(per_page).offset((page - 1) * per_page)
        total = select(func.count()).select_from(T).where(T.repository == name)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
            count = await connection.scalar(total)
        return Page(items=[_tag_summary(row) for row in rows], page=page, per_page=per_page, total=count or 0)

    async def tag(self, viewer: Viewer, name: str, tag: str) -> TagDetail:
        """One tag: per platform its layers (with history), config summary and manifest; its referrers."""
        await self.require_visible(viewer, name)
        summary = await self._tag_summary(name, tag)
        referrers = await self._referrer_rows(name, summary.digest)
        return await imagedetail.tag_detail(self.store, name, summary, referrers)

    async def _tag_summary(self, name: str, tag: str) -> TagSummary:
        query = _tag_query(and_(T.repository == name, T.name == tag))
        async with self.engine.connect() as connection:
            row = (await connection.execute(query)).mappings().first()
        if row is None:
            raise NotFound(f"tag {tag!r} not found in repository {name!r}")
        return _tag_summary(row)

    async def _referrer_rows(self, name: str, digest: str) -> Sequence[Any]:
        query = select(M.digest, M.media_type, M.artifact_type).where(M.repository == name, M.subject == digest)
        async with self.engine.connect() as connection:
            return (await connection.execute(query.order_by(M.pushed_at, M.digest))).all()

    # -- edits ----------------------------------------------------------------------------------------------

    async def set_description(self, viewer: Viewer, name: str, text: str) -> RepositorySummary:
        """Replace the description (Markdown, at most 25,000 characters). ``Forbidden`` unless the viewer
        administers the namespace; ``InvalidInput`` when too long."""
        if len(text) > acc.MAX_DESCRIPTION_LENGTH:
            raise InvalidInput(f"the description is longer than {acc.MAX_DESCRIPTION_LENGTH} characters")
        accounts = await self._require_admin(viewer, name)
        await _account_call(accounts.set_description(name, text, actor=_actor(viewer)))
        return await self.require_visible(viewer, name)

    async def set_visibility(self, viewer: Viewer, name: str, visibility: str) -> RepositorySummary:
        """Make the repository ``public`` or ``private`` (else ``InvalidInput``); same permission as above."""
        if visibility not in acc.VISIBILITIES:
            raise InvalidInput(f"visibility must be public or private, not {visibility[:50]!r}")
        accounts = await self._require_admin(viewer, name)
        checked: Visibility = "private" if visibility == "private" else "public"
        await _account_call(accounts.set_visibility(name, checked, actor=_actor(viewer)))
        return await self.require_visible(viewer, name)

    async def delete_tag(self, viewer: Viewer, name: str, tag: str) -> None:
        """Remove a tag from storage, as ``DELETE /v2/<name>/manifests/<tag>`` does, then from the index. The
        manifest stays (reachable by digest) until garbage collection. ``NotFound`` for an unknown tag,
        ``Forbidden`` for non-admins or when the registry has deletes disabled."""
        summary = await self.require_visible(viewer, name)
        self._check_may_change(viewer, summary.namespace, name)
        if not self.deletes_enabled:
            raise Forbidden("deletes are disabled on this registry")
        try:
            await self.store.manifests.delete(name, tag)
        except RegistryError:
            raise NotFound(f"tag {tag!r} not found in repository {name!r}") from None
        await self._forget_tag(name, tag)

    async def _forget_tag(self, name: str, tag: str) -> None:
        if self.index is not None:
            await self.index.tag_deleted(name, tag)
            return
        async with self.engine.execution_options(**{WRITE: True}).begin() as connection:
            await connection.execute(delete(T).where(T.repository == name, T.name == tag))
            count = select(func.count()).select_from(T).where(T.repository == name).scalar_subquery()
            await connection.execute(update(R).where(R.name == name).values(tag_count=count))

    async def _require_admin(self, viewer: Viewer, name: str) -> acc.AccountStore:
        summary = await self.require_visible(viewer, name)
        if self.accounts is None:
            raise Forbidden(NO_ACCOUNTS)
        self._check_may_change(viewer, summary.namespace, name)
        await _account_call(self.accounts.ensure_repository(name, summary.visibility, actor=_actor(viewer)))
        return self.accounts

    def _check_may_change(self, viewer: Viewer, namespace: str, name: str) -> None:
        """``Forbidden`` unless ``viewer`` administers ``namespace`` and signed in with more than a read-only token."""
        if not self._can_admin(viewer, namespace):
            raise Forbidden(self._not_admin_message(viewer, name))
        if viewer.read_only:
            raise Forbidden(READ_ONLY)

    def _can_admin(self, viewer: Viewer, namespace: str) -> bool:
        return self.accounts is not None and viewer.can_admin(namespace)

    def _not_admin_message(self, viewer: Viewer, name: str) -> str:
        if self.accounts is None:
            return NO_ACCOUNTS
        if viewer.name is None:
            return f"sign in to change repository {name!r}"
        return f"only the admins of {name.partition('/')[0]!r} may change repository {name!r}"

    # -- SQL building blocks --------------------------------------------------------------------------------

    def _visible(self, viewer: Viewer) -> ColumnElement[bool]:
        """The rows of ``catalog_repositories`` ⟕ ``repositories`` the viewer may see."""
        if self.accounts is None or viewer.is_admin:
            return true()
        allowed: list[ColumnElement[bool]] = [A.visibility.is_(None), A.visibility != "private"]
        if viewer.namespaces:
            allowed.append(R.namespace.in_(sorted(viewer.namespaces)))
        return or_(*allowed)

    def _visibility(self) -> ColumnElement[str]:
        if self.accounts is None:
            return literal("public")
        return func.coalesce(A.visibility, "public")

    def _from_repositories(self, *columns: Any) -> Select[Any]:
        return select(*columns).select_from(R).outerjoin(A, A.name == R.name)

    def _summaries(self, *where: ColumnElement[bool]) -> Select[Any]:
        columns = (
            R.name,
            R.namespace,
            self._visibility().label("visibility"),
            func.coalesce(A.description, "").label("description"),
            R.tag_count,
            R.size,
            R.pull_count,
            R.pushed_at,
            R.last_pull_at,
        )
        return self._from_repositories(*columns).where(*where)

    async def _page(
        self, where: ColumnElement[bool], order: Sequence[Any], page: int, per_page: int, *, scan: bool = False
    ) -> Page[RepositorySummary]:
        """One page of summaries and the total. ``scan``: the query reads every row anyway (a search), so the
        total comes with the rows as a window count (one scan, not two); otherwise (an index-ordered list that
        stops after the page) a separate count, which is cheaper than sorting every row."""
        query = self._summaries(where).order_by(*order).limit(per_page).offset((page - 1) * per_page)
        if scan:
            query = query.add_columns(func.count().over().label("total"))
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
            if scan and rows:
                count = rows[0]["total"]
            elif rows or page > 1:
                count = await connection.scalar(self._from_repositories(func.count()).where(where))
            else:
                count = 0
        return Page(items=_summary_list(rows), page=page, per_page=per_page, total=count or 0)


def _check_page(page: int, per_page: int) -> None:
    if not 1 <= page <= MAX_PAGE:
        raise InvalidInput(f"page must be between 1 and {MAX_PAGE}")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise InvalidInput(f"per_page must be between 1 and {MAX_PER_PAGE}")


@dataclass(frozen=True)
class _Search:
    """The SQL of one search ``query`` (lower-case, stripped, not empty) on a ``dialect``.

    Repository names are lower-case by the OCI grammar, so they are compared as they are; descriptions match
    case-insensitively: ``ILIKE`` on PostgreSQL, ``LIKE`` on SQLite (case-insensitive there for ASCII, as
    SQLite's ``lower()`` is). No ``lower()`` per row: it costs a third of a search on SQLite.
    """

    query: str
    dialect: str

    def _pattern(self, before: str, after: str) -> str:
        escaped = self.query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"{before}{escaped}{after}"

    def _name_like(self, before: str, after: str) -> ColumnElement[bool]:
        return R.name.like(self._pattern(before, after), escape="\\")

    def matches(self) -> ColumnElement[bool]:
        """The name or the description contains the query."""
        pattern = self._pattern("%", "%")
        described = A.description.ilike if self.dialect == "postgresql" else A.description.like
        return or_(self._name_like("%", "%"), described(pattern, escape="\\"))

    def rank(self) -> ColumnElement[int]:
        """0..3 as in the module docstring, for rows that ``matches``."""
        return case(
            (R.name == self.query, 0),
            (or_(self._name_like("", "%"), self._name_like("%/", "%")), 1),
            (self._name_like("%", "%"), 2),
            else_=3,
        )


def _sizes(name: str) -> Select[Any]:
    """One row: (unique bytes, shared bytes) of the distinct blobs repository ``name`` references."""
    mine = select(B.digest, func.max(B.size).label("size")).where(B.repository == name).group_by(B.digest).subquery()
    other = aliased(B)
    shared = exists().where(other.digest == mine.c.digest, other.repository != name)
    total, shared_bytes = func.sum(mine.c.size), func.sum(case((shared, mine.c.size), else_=0))
    return select(total - shared_bytes, shared_bytes)  # one EXISTS per digest, not two


def _tag_query(where: ColumnElement[bool]) -> Select[Any]:
    """Tags with their manifest's media type, size and platforms (a tag whose manifest row is missing still
    shows, with no platforms)."""
    joined = and_(M.repository == T.repository, M.digest == T.digest)
    columns = (T.name, T.digest, T.pushed_at, T.last_pull_at, M.media_type, M.size, M.platforms)
    return select(*columns).select_from(T).outerjoin(M, joined).where(where)


def _tag_summary(row: RowMapping) -> TagSummary:
    return TagSummary(
        name=row["name"],
        digest=row["digest"],
        media_type=row["media_type"] or "",
        size=row["size"] or 0,
        platforms=[_platform(p) for p in row["platforms"] or [] if isinstance(p, dict)],
        pushed_at=row["pushed_at"],
        last_pull_at=row["last_pull_at"],
    )


def _platform(entry: dict[str, Any]) -> Platform:
    return Platform(
        os=str(entry.get("os") or ""),
        architecture=str(entry.get("architecture") or ""),
        variant=entry.get("variant") or None,
        digest=str(entry.get("digest") or ""),
        size=int(entry.get("size") or 0),
    )


def _summary_list(rows: Sequence[RowMapping]) -> list[RepositorySummary]:
    return [RepositorySummary.model_validate(dict(row)) for row in rows]


def _actor(viewer: Viewer) -> str:
    return viewer.name or "anonymous"


async def _account_call(call: Any) -> Any:
    """Await an ``AccountStore`` call, mapping its errors to the catalog's."""
    try:
        return await call
    except acc.NotFound as exc:
        raise NotFound(str(exc)) from None
    except acc.AccountError as exc:
        raise InvalidInput(str(exc)) from None
