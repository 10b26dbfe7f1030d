"""DVC stage pool: the manifest of which subjects' training ERPs each mapper may use.

intra: a constant (adding a subject leaves the others' stages up to date); inter: every
subject's training-feature file with its md5 (see neurovision.protocol).
"""

from __future__ import annotations

import sys

import _workspace  # noqa: F401  (this workspace's src/ first on sys.path)

from neurovision.io import save_json
from neurovision.protocol import pool_manifest
from neurovision.stage import params_from, parser, run


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--features", required=True, help="directory of sub-K.npy training ERPs")
    ap.add_argument("--out", required=True, help="manifest JSON")
    args = ap.parse_args(argv)
    params = params_from(args)
    save_json(args.out, pool_manifest(args.features, params.data.subjects,
                                      params.train.protocol))


if __name__ == "__main__":
    sys.exit(run(main))
