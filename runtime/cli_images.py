"""The image commands of the runtime CLI (login, logout, pull, push, images, rmi, tag, save, load, inspect).

They follow docker's flags and output. A mistake the user can make (a bad reference, an unknown image, a wrong
password, an unreachable registry, a digest mismatch) prints one ``Error: ...`` line on stderr and exits 1; an
unexpected failure of dockyard itself exits 125, as docker does; Ctrl-C exits 130. None of them shows a traceback.

Registries on 127.0.0.0/8 (and ``localhost``) may speak plain HTTP; any other host must be named with
``--insecure-registry`` (repeatable) or in ``DOCKYARD_INSECURE_REGISTRIES`` (comma-separated).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

from dockyard.cli import cli, runtime_root
from runtime.credentials import CredentialsError, CredentialStore, hostname_of
from runtime.imagestore import UNNAMED, ImageNotFoundError, ImageRecord, ImageStore, ImageStoreError
from runtime.manifests import DistributionError, NullProgress, Platform, Progress
from runtime.references import InvalidReferenceError, Reference, parse

if TYPE_CHECKING:  # aiohttp and rich are imported only by the commands that talk to a registry
    from runtime.distribution import RegistryClient

P = ParamSpec("P")
T = TypeVar("T")

INSECURE_ENV = "DOCKYARD_INSECURE_REGISTRIES"
EXIT_USER = 1
EXIT_INTERNAL = 125
EXIT_INTERRUPTED = 130
USER_ERRORS = (InvalidReferenceError, DistributionError, ImageStoreError, CredentialsError, OSError)
_SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


# -- errors --------------------------------------------------------------------------------------------


class UserError(Exception):
    """A mistake of the user's that a command detects itself (exit 1, one line)."""


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (its type name when it has none)."""
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return " ".join(text.split()) or type(exc).__name__


def fail(message: str, code: int = EXIT_USER) -> NoReturn:
    """Print ``Error: message`` on stderr and exit with ``code``."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def handled(func: Callable[P, None]) -> Callable[P, None]:
    """Run a command body, turning every failure into one line and docker's exit codes (1, 125, 130)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (UserError, *USER_ERRORS) as exc:
            fail(one_line(exc))
        except Exception as exc:  # dockyard's own failure: one line and exit 125, never a traceback
            fail(f"unexpected failure ({type(exc).__name__}): {one_line(exc)}", EXIT_INTERNAL)

    return wrapper


# -- shared options and helpers ------------------------------------------------------------------------

insecure_option = click.option(
    "--insecure-registry",
    "insecure",
    multiple=True,
    metavar="HOST",
    help=f"Allow plain HTTP or unverified TLS for HOST[:PORT] or a CIDR range (repeatable; also {INSECURE_ENV}).",
)


def insecure_registries(flags: Iterable[str]) -> list[str]:
    """The ``--insecure-registry`` values plus the comma-separated list in ``DOCKYARD_INSECURE_REGISTRIES``."""
    listed = os.environ.get(INSECURE_ENV, "").split(",")
    return [host.strip() for host in [*flags, *listed] if host.strip()]


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """``run_async(work)``; asyncio is imported here, by the commands that talk to a registry (it is slow to load)."""
    import asyncio

    return asyncio.run(work)


def registry_client(insecure: list[str], **options: Any) -> RegistryClient:
    """A fresh registry client that treats the hosts of ``insecure`` as insecure registries."""
    from runtime.distribution import RegistryClient

    return RegistryClient(insecure_registries=insecure, **options)


def image_store(ctx: click.Context) -> ImageStore:
    """The image store under the global ``--root``."""
    return ImageStore(runtime_root(ctx))


def progress_display(show: bool) -> contextlib.AbstractContextManager[Progress]:
    """Rich bars per blob and a total when ``show`` (and stdout is a terminal); otherwise nothing."""
    if show and sys.stdout.isatty():
        from runtime.progress import RichProgress

        return RichProgress()
    return contextlib.nullcontext(NullProgress())


def familiar_repository(ref: Reference) -> str:
    """Docker's short spelling of the repository alone (``busybox``, ``127.0.0.1:5000/ns/app``)."""
    return Reference(ref.registry, ref.repository).familiar


def short_id(digest: str) -> str:
    """The 12 hex digits ``docker images`` shows for an id."""
    return digest.partition(":")[2][:12]


def human_size(size: float) -> str:
    """Docker's ``HumanSizeWithPrecision(size, 3)``: decimal units, three significant digits (``4.26MB``)."""
    unit = 0
    while size >= 1000 and unit < len(_SIZE_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.3g}{_SIZE_UNITS[unit]}"


def human_duration(seconds: float) -> str:
    """Docker's ``units.HumanDuration`` (``About an hour``, ``3 weeks``...)."""
    hours = int(seconds / 3600 + 0.5)
    if seconds < 1:
        return "Less than a second"
    if int(seconds) == 1:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    if int(seconds / 60) == 1:
        return "About a minute"
    if seconds < 3600:
        return f"{int(seconds / 60)} minutes"
    if hours == 1:
        return "About an hour"
    for limit, divisor, unit in ((48, 1, "hours"), (24 * 14, 24, "days"), (24 * 60, 24 * 7, "weeks")):
        if hours < limit:
            return f"{hours // divisor} {unit}"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    return f"{int(seconds / 3600 / 24 / 365)} years"


def created_ago(created: str | None, now: datetime | None = None) -> str:
    """``2 weeks ago`` for an RFC 3339 ``created`` time; ``N/A`` when unknown or unreadable."""
    if not created:
        return "N/A"
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return "N/A"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return human_duration(max(((now or datetime.now(UTC)) - when).total_seconds(), 0.0)) + " ago"


# -- login / logout ------------------------------------------------------------------------------------


def read_password(password: str | None, password_stdin: bool, username: str | None) -> str:
    """The password from ``-p``, ``--password-stdin`` or an interactive prompt, like ``docker login``."""
    if password is not None and password_stdin:
        raise UserError("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if username is None:
            raise UserError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password is not None:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True)
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, default="", show_default=False)
    else:
        raise UserError("Cannot perform an interactive login from a non TTY device")
    if not password:
        raise UserError("Password Required")
    return password


def read_username(username: str | None) -> str:
    """``-u``, or a prompt on a terminal."""
    if username:
        return username
    if not sys.stdin.isatty():
        raise UserError("Cannot perform an interactive login from a non TTY device (use -u USER)")
    answer: str = click.prompt("Username")
    if not answer.strip():
        raise UserError("Username Required")
    return answer.strip()


async def verify_login(host: str, username: str, password: str, insecure: list[str]) -> str | None:
    """Check the credentials against the registry; returns the identity token it handed out, if any."""
    async with registry_client(insecure, credentials=lambda _host: None) as client:
        return await client.login(host, username, password)


@cli.command()
@click.argument("server")
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password (insecure: prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@insecure_option
@handled
def login(
    server: str, username: str | None, password: str | None, password_stdin: bool, insecure: tuple[str, ...]
) -> None:
    """Log in to a registry: check the credentials, then store them in docker's config.json."""
    host = hostname_of(server)
    if not host:
        raise UserError(f"invalid registry address {server!r}")
    secret = read_password(password, password_stdin, username)
    user = read_username(username)
    token = run_async(verify_login(host, user, secret, insecure_registries(insecure)))
    CredentialStore().login(host, user, secret, identity_token=token)
    click.echo("Login Succeeded")


@cli.command()
@click.argument("server")
@handled
def logout(server: str) -> None:
    """Forget the stored credentials of a registry."""
    host = hostname_of(server)
    if CredentialStore().logout(host):
        click.echo(f"Removing login credentials for {host}")
    else:
        click.echo(f"Not logged in to {host}")


# -- pull / push ---------------------------------------------------------------------------------------


async def pull_image(
    store: ImageStore, ref: Reference, platform: Platform | None, insecure: list[str], progress: Progress
) -> ImageRecord:
    """Pull ``ref`` into ``store`` with a fresh registry client."""
    async with registry_client(insecure) as client:
        return await store.pull(ref, client, platform, progress)


def existing(store: ImageStore, name: str) -> ImageRecord | None:
    """The local image named ``name``, or None."""
    try:
        return store.get(name)
    except ImageStoreError:
        return None


@cli.command()
@click.argument("reference")
@click.option("--platform", help="os/arch[/variant] to pick from a multi-platform image (default: this host's).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image reference.")
@insecure_option
@click.pass_context
@handled
def pull(ctx: click.Context, reference: str, platform: str | None, quiet: bool, insecure: tuple[str, ...]) -> None:
    """Pull an image from a registry."""
    ref = parse(reference)
    wanted = Platform.parse(platform) if platform else None
    store = image_store(ctx)
    before = existing(store, str(ref))
    if not quiet:
        click.echo(f"{ref.tag or ref.digest}: Pulling from {ref.repository}")
    with progress_display(not quiet) as progress:
        record = run_async(pull_image(store, ref, wanted, insecure_registries(insecure), progress))
    if not quiet:
        click.echo(f"Digest: {record.index_digest or record.manifest_digest}")
        fresh = before is None or before.manifest_digest != record.manifest_digest
        status = "Downloaded newer image for" if fresh else "Image is up to date for"
        click.echo(f"Status: {status} {ref.familiar}")
    click.echo(str(ref))


async def push_image(store: ImageStore, name: str, insecure: list[str], progress: Progress) -> str:
    """Push the local image ``name`` with a fresh registry client; returns the manifest digest."""
    async with registry_client(insecure) as client:
        return await store.push(name, client, progress)


@cli.command()
@click.argument("reference")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image reference.")
@insecure_option
@click.pass_context
@handled
def push(ctx: click.Context, reference: str, quiet: bool, insecure: tuple[str, ...]) -> None:
    """Push a local image to the registry its name says."""
    store = image_store(ctx)
    record = store.get(reference)
    ref = record.reference
    if ref is None:
        raise UserError(f"image {reference} has no name to push to; tag it first")
    if not quiet:
        click.echo(f"The push refers to repository [{ref.name}]")
    with progress_display(not quiet) as progress:
        digest = run_async(push_image(store, record.name, insecure_registries(insecure), progress))
    if quiet:
        click.echo(str(ref))
        return
    size = len(store.read_blob(record.manifest_digest))
    click.echo(f"{ref.tag or ref.digest}: digest: {digest} size: {size}")


# -- images / tag / rmi --------------------------------------------------------------------------------


def image_row(record: ImageRecord, no_trunc: bool) -> tuple[str, str, str, str, str]:
    """REPOSITORY, TAG, IMAGE ID, CREATED and SIZE of one image name, as ``docker images`` prints them."""
    ref = record.reference
    repository = familiar_repository(ref) if ref is not None else UNNAMED
    tag = ref.tag if ref is not None and ref.tag else UNNAMED
    image_id = record.id if no_trunc else short_id(record.id)
    return repository, tag, image_id, created_ago(record.created), human_size(record.size)


def matches(record: ImageRecord, wanted: str | None) -> bool:
    """True when ``wanted`` (``REPOSITORY`` or ``REPOSITORY:TAG``) names ``record``, or is not given."""
    if wanted is None:
        return True
    ref = record.reference
    if ref is None:
        return False
    target = parse(wanted, default_tag=None)
    return target.name == ref.name and (target.tag is None or target.tag == ref.tag)


def format_table(rows: list[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns separated by three spaces, like docker's tabwriter output."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


@cli.command()
@click.argument("repository", required=False)
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the IDs.")
@click.pass_context
@handled
def images(ctx: click.Context, repository: str | None, quiet: bool, no_trunc: bool) -> None:
    """List local images (newest first)."""
    records = [r for r in image_store(ctx).images() if matches(r, repository)]
    records.sort(key=lambda r: (r.created or "", r.name), reverse=True)
    if quiet:
        seen = dict.fromkeys(r.id if no_trunc else short_id(r.id) for r in records)
        for image_id in seen:
            click.echo(image_id)
        return
    header = ("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")
    for line in format_table([header, *(image_row(r, no_trunc) for r in records)]):
        click.echo(line)


@cli.command()
@click.argument("source")
@click.argument("target")
@click.pass_context
@handled
def tag(ctx: click.Context, source: str, target: str) -> None:
    """Create a tag TARGET that refers to the image SOURCE."""
    parse(target)  # a malformed target is reported before anything is looked up, as docker does
    image_store(ctx).tag(source, target)


def display_name(name: str) -> str:
    """Docker's short spelling of a stored image name."""
    return name if name.startswith(UNNAMED) else parse(name).familiar


@cli.command()
@click.argument("references", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Remove every name of an image given by id.")
@click.pass_context
@handled
def rmi(ctx: click.Context, references: tuple[str, ...], force: bool) -> None:
    """Remove one or more images; blobs no other image needs are deleted."""
    store = image_store(ctx)
    errors: list[str] = []
    for text in references:
        try:
            result = store.rmi(text, force=force)
        except ImageStoreError as exc:
            errors.append(one_line(exc))
            continue
        for name in result.untagged:
            click.echo(f"Untagged: {display_name(name)}")
        for digest in result.deleted:
            click.echo(f"Deleted: {digest}")
    if errors:
        fail("; ".join(errors))


# -- save / load ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_file(name: str) -> Iterator[Path]:
    """A path in a private temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="dockyard-") as folder:
        yield Path(folder) / name


@cli.command()
@click.argument("references", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write to a file instead of stdout.")
@click.pass_context
@handled
def save(ctx: click.Context, references: tuple[str, ...], output: Path | None) -> None:
    """Save images to a tar archive (OCI layout plus docker's manifest.json)."""
    store = image_store(ctx)
    if output is not None:
        store.save(references, output)
        return
    if sys.stdout.isatty():
        raise UserError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    with scratch_file("images.tar") as path:
        store.save(references, path)
        with path.open("rb") as archive:
            shutil.copyfileobj(archive, sys.stdout.buffer)


@cli.command()
@click.option("-i", "--input", "source", type=click.Path(path_type=Path), help="Read from a file, not stdin.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the output.")
@click.pass_context
@handled
def load(ctx: click.Context, source: Path | None, quiet: bool) -> None:
    """Load images from a tar archive (OCI layout or ``docker save``)."""
    store = image_store(ctx)
    if source is not None:
        if not source.is_file():
            raise UserError(f"open {source}: no such file")
        records = store.load(source)
    else:
        if sys.stdin.isatty():
            raise UserError("requested load from stdin, but stdin is empty (use -i FILE)")
        with scratch_file("images.tar") as path:
            with path.open("wb") as archive:
                shutil.copyfileobj(sys.stdin.buffer, archive)
            records = store.load(path)
    if quiet:
        return
    for record in records:
        if record.reference is None:
            click.echo(f"Loaded image ID: {record.id}")
        else:
            click.echo(f"Loaded image: {display_name(record.name)}")


# -- inspect -------------------------------------------------------------------------------------------


def repo_names(store: ImageStore, record: ImageRecord) -> tuple[list[str], list[str]]:
    """``RepoTags`` and ``RepoDigests`` of the image ``record`` names: every tagged name of the same id, and
    ``repository@digest`` for each of its repositories (the index digest when it was pulled from one)."""
    tags: list[str] = []
    digests: list[str] = []
    for other in store.images():
        ref = other.reference
        if other.id != record.id or ref is None:
            continue
        if ref.tag is not None:
            tags.append(ref.familiar)
        digest = ref.digest or other.index_digest or other.manifest_digest
        digests.append(f"{familiar_repository(ref)}@{digest}")
    return tags, list(dict.fromkeys(digests))


def inspect_image(store: ImageStore, text: str) -> dict[str, Any]:
    """``docker image inspect``-like JSON for the local image ``text``."""
    record = store.get(text)
    config = store.image_config(record.name)
    tags, digests = repo_names(store, record)
    doc: dict[str, Any] = {
        "Id": record.id,
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": "",
        "Comment": "",
        "Created": config.get("created", ""),
        "Author": config.get("author", ""),
        "Config": config.get("config", {}),
        "Architecture": config.get("architecture", ""),
        "Os": config.get("os", ""),
        "Size": record.size,
        "RootFS": {"Type": "layers", "Layers": list(config.get("rootfs", {}).get("diff_ids", []))},
        "Metadata": {"ManifestDigest": record.manifest_digest, "MediaType": record.media_type},
    }
    if config.get("variant"):
        doc["Variant"] = config["variant"]
    return doc


@cli.command()
@click.argument("names", nargs=-1, required=True)
@click.pass_context
@handled
def inspect(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Show the details of one or more images or containers as a JSON array."""
    from runtime.cli_system import inspect_container  # imported here: cli_system builds on this module
    from runtime.containers import ContainerError, ContainerStore

    store = image_store(ctx)
    found: list[dict[str, Any]] = []
    errors: list[str] = []
    for name in names:
        try:
            found.append(inspect_image(store, name))
        except ImageNotFoundError:
            try:  # not an image: a container, as docker's inspect tries both
                found.append(inspect_container(ContainerStore(runtime_root(ctx)), name))
            except ContainerError as error:
                missing = str(error).startswith("No such container")
                errors.append(f"no such image or container: {name}" if missing else one_line(error))
        except ImageStoreError as exc:
            errors.append(one_line(exc))
    click.echo(json.dumps(found, indent=4))
    if errors:
        fail("; ".join(errors))
