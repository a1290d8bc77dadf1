"""The Docker engine, Compose v2 and the offline stand-in base images the compose test needs.

Nothing here knows the project's services; `tests/compose/run.py` uses these helpers.

- The engine: Debian's `docker.io` (installed with apt when `dockerd` is missing), started in
  the background when no engine answers, and stopped again by whoever started it.
- Compose v2: Debian bookworm ships only Compose v1 (1.29, which rejects the top-level `name:`).
  The `docker-compose` package of Debian trixie is Compose v2 (2.26, built by Debian from source,
  one static binary that needs only libc6 >= 2.34, which bookworm has). It is downloaded with
  apt through a private apt configuration (its own sources list and state under the cache
  folder: the machine's apt sources are not changed), checked by apt against Debian's signed
  Release file, and unpacked into the cache folder; nothing is installed system-wide.
- Stand-in base images: no image registry can be reached, so `debootstrap --variant=minbase
  bookworm` builds a Debian root filesystem that `docker import` turns into a base image; the
  Dockerfiles in `tests/compose/standins/` build the stand-ins on it. Every image is tagged with a
  hash of its recipe, so a second run finds it and builds nothing.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

STANDINS_DIR = Path(__file__).resolve().parent / "standins"
DEBIAN_SUITE = "bookworm"
# the Debian archive keyring that debootstrap and apt check signatures with
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
COMPOSE_PACKAGE = ("trixie", "docker-compose")  # Compose v2, from Debian
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")


def log(message: str) -> None:
    print(f"[compose-test {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command, raising CalledProcessError (with its output shown) when it fails."""
    kwargs.setdefault("text", True)
    return subprocess.run(argv, check=True, **kwargs)  # type: ignore[call-overload, no-any-return]


# --- packages ---------------------------------------------------------------------------------

_apt_updated = False


def apt_install(*packages: str) -> None:
    """Install Debian packages of the machine's own release (root, as everywhere here)."""
    global _apt_updated
    if not _apt_updated:
        run(["apt-get", "update", "-qq"])
        _apt_updated = True
    log(f"apt-get install {' '.join(packages)}")
    run(["apt-get", "install", "-y", "-qq", *packages], stdout=subprocess.DEVNULL)


def debian_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 or one-line sources), for debootstrap."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and words[1].rstrip("/").endswith("/debian"):
                return words[1]
            if words[:1] == ["deb"] and any(w.rstrip("/").endswith("/debian") for w in words):
                return next(w for w in words if w.rstrip("/").endswith("/debian"))
    return "http://deb.debian.org/debian"


# --- the engine -------------------------------------------------------------------------------

def engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@dataclass
class Engine:
    """A dockerd this test started (process None: it was already running, and stays so)."""

    process: subprocess.Popen[bytes] | None

    def stop(self) -> None:
        if self.process is None:
            return
        log("stopping the Docker engine this test started")
        self.process.terminate()
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def ensure_engine(log_file: Path) -> Engine:
    """An answering engine: the running one, or dockerd started now (installed if missing)."""
    if shutil.which("docker") is None or shutil.which("dockerd") is None:
        apt_install("docker.io")
    if engine_answers():
        log("a Docker engine is already running: using it, and leaving it running")
        return Engine(None)
    log(f"starting dockerd (log: {log_file})")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as sink:
        process = subprocess.Popen(["dockerd"], stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    engine = Engine(process)
    deadline = time.monotonic() + 90
    while not engine_answers():
        if process.poll() is not None or time.monotonic() > deadline:
            engine.stop()
            raise RuntimeError(f"dockerd did not start; see {log_file}")
        time.sleep(1)
    return engine


# --- Compose v2 -------------------------------------------------------------------------------

def compose_binary(cache: Path) -> Path:
    """Path of the Compose v2 binary, downloaded from Debian into the cache on first use."""
    binary = cache / "docker-compose" / "usr" / "libexec" / "docker" / "cli-plugins" / "docker-compose"
    if binary.is_file():
        return binary
    suite, package = COMPOSE_PACKAGE
    apt_dir = cache / f"apt-{suite}"
    (apt_dir / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (apt_dir / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    sources = apt_dir / "sources.list"
    sources.write_text(f"deb [signed-by={DEBIAN_KEYRING}] {debian_mirror()} {suite} main\n")
    options = [
        "-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", f"Dir::State::Lists={apt_dir / 'lists'}", "-o", f"Dir::Cache={apt_dir}",
        "-o", "APT::Sandbox::User=root",
    ]
    log(f"downloading Compose v2 from Debian {suite} (package {package})")
    run(["apt-get", *options, "update", "-qq"])
    run(["apt-get", *options, "download", "-qq", package], cwd=apt_dir)
    (deb,) = apt_dir.glob(f"{package}_*.deb")
    run(["dpkg-deb", "-x", str(deb), str(cache / "docker-compose")])
    return binary


# --- stand-in base images ---------------------------------------------------------------------

def _digest(*parts: bytes | str) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part.encode() if isinstance(part, str) else part)
        sha.update(b"\0")
    return sha.hexdigest()[:12]


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True,
                          check=False).returncode == 0


def _host_ca_files() -> list[Path]:
    return sorted(HOST_CA_DIR.glob("*.crt")) if HOST_CA_DIR.is_dir() else []


def debian_base_image() -> str:
    """`churn-standin/debian:<hash>`: debootstrap minbase bookworm, with the machine's CA certificates.

    The CA certificates (/usr/local/share/ca-certificates) are trusted in the image, so package
    downloads inside later builds pass the machine's TLS inspection, as they do on the host.
    """
    # the recipe is this function's own code, plus the certificates it copies in
    recipe: list[bytes | str] = [DEBIAN_SUITE, inspect.getsource(debian_base_image)]
    recipe += [ca.read_bytes() for ca in _host_ca_files()]
    tag = f"churn-standin/debian:{_digest(*recipe)}"
    if image_exists(tag):
        return tag
    if shutil.which("debootstrap") is None:
        apt_install("debootstrap")
    with tempfile.TemporaryDirectory(prefix="churn-rootfs-", dir="/var/tmp") as rootfs:
        log(f"debootstrap --variant=minbase {DEBIAN_SUITE} (a few minutes) -> {tag}")
        run(["debootstrap", "--variant=minbase", "--include=ca-certificates",
             f"--keyring={DEBIAN_KEYRING}", DEBIAN_SUITE, rootfs, debian_mirror()],
            stdout=subprocess.DEVNULL)
        root = Path(rootfs)
        for ca in _host_ca_files():
            shutil.copy(ca, root / "usr/local/share/ca-certificates" / ca.name)
        run(["chroot", rootfs, "update-ca-certificates"], stdout=subprocess.DEVNULL)
        mirror = debian_mirror()
        security = mirror.replace("/debian", "/debian-security")
        (root / "etc/apt/sources.list").write_text(
            f"deb {mirror} {DEBIAN_SUITE} main\n"
            f"deb {mirror} {DEBIAN_SUITE}-updates main\n"
            f"deb {security} {DEBIAN_SUITE}-security main\n"
        )
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True)
        for lists in (root / "var/lib/apt/lists").glob("*_*"):
            lists.unlink()
        tar = subprocess.Popen(["tar", "-C", rootfs, "--numeric-owner", "-c", "."],
                               stdout=subprocess.PIPE)
        run(["docker", "import", "--change", 'CMD ["bash"]', "-", tag], stdin=tar.stdout,
            stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise RuntimeError("tar of the debootstrap root filesystem failed")
    return tag


def build_standin(name: str, args: dict[str, str], files: dict[str, bytes] | None = None) -> str:
    """`churn-standin/<name>:<hash>` from standins/<name>.Dockerfile, built unless it exists.

    args are build arguments (the images it builds on); files are extra build-context files.
    The hash covers the Dockerfile, every file it copies and the arguments.
    """
    dockerfile = STANDINS_DIR / f"{name}.Dockerfile"
    context_files = {p.name: p.read_bytes() for p in STANDINS_DIR.glob(f"{name}-*")}
    context_files.update(files or {})
    parts: list[bytes | str] = [dockerfile.read_bytes(), *sorted(f"{k}={v}" for k, v in args.items())]
    for file_name, content in sorted(context_files.items()):
        parts += [file_name, content]
    tag = f"churn-standin/{name}:{_digest(*parts)}"
    if image_exists(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix=f"churn-standin-{name}-") as context:
        for file_name, content in context_files.items():
            (Path(context) / file_name).write_bytes(content)
            os.chmod(Path(context) / file_name, 0o755)
        build_args = [word for key, value in args.items() for word in ("--build-arg", f"{key}={value}")]
        log(f"building the stand-in {tag}")
        run(["docker", "build", "--quiet", "-f", str(dockerfile), *build_args, "-t", tag, context],
            stdout=subprocess.DEVNULL, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    return tag
