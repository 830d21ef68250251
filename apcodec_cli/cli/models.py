"""`apcodec models`: the installed releases, their code tables, and where they were found."""

from __future__ import annotations

from ..models import releases


def describe_models() -> str:
    """The releases in every searched folder, newest of each kind marked, then the other
    weights files of those folders, the releases that have left the package (unless a
    searched folder has them) and the folders themselves."""
    found = releases.scan()
    newest = {}
    for release in found:
        if release.number > newest.get(release.kind, (0, None))[0]:
            newest[release.kind] = (release.number, release)
    lines = []
    for release in found:
        kind = "streamable" if release.streamable else "full"
        use = ""
        if newest[release.kind][1] is release:
            use = "  <- newest: apcodec encode" + (" -s" if release.streamable else "")
        lines.append(f"{release.name:<14} {kind:<10} network {release.network_fingerprint.hex()}"
                     f"  {release.path}{use}")
        for tables in release.tables:
            last = "  <- newest" if tables is release.tables[-1] else ""
            lines.append(f"{'':14} tables {tables.number:<3} weights "
                         f"{tables.weights_fingerprint.hex()}  {tables.path}{last}")
    if not found:
        lines.append("no releases installed")
    others = releases.other_files()
    if others:
        lines.append("other weights files (fingerprinted when a file needs them):")
        lines += [f"  {path}" for path in others]
    here = {release.network_fingerprint for release in found}
    gone = [r for r in releases.RETIRED if not r.fingerprints & here]
    if gone:
        lines.append("no longer in the package (their files decode from $"
                     f"{releases.PATH_ENV}):")
        lines += [f"  {r.how_to_get()}" for r in gone]
    lines.append(f"searched, in order (${releases.PATH_ENV} first): "
                 + ", ".join(str(f) for f in releases.folders()))
    return "\n".join(lines)
