"""DVC stage download@N: one subject's two preprocessed-EEG files into --out, and the
demo's ideal-observer ceiling (null values for real data) into --ceiling."""

from __future__ import annotations

import sys

from neurovision import demo
from neurovision.errors import DataError
from neurovision.io import atomic_dir, save_json
from neurovision.stage import params_from, parser, run


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--subject", type=int, required=True)
    ap.add_argument("--out", required=True, help="directory for the subject's EEG files")
    ap.add_argument("--ceiling", required=True, help="JSON file for the ideal-observer ceiling")
    args = ap.parse_args(argv)
    p = params_from(args).data
    if p.source != "demo":
        raise DataError(f"params: data.source: '{p.source}' is not available yet in this "
                        f"version; use data.source: demo")
    with atomic_dir(args.out) as tmp:
        ceiling = demo.write_subject(tmp, p.demo, args.subject)
    save_json(args.ceiling, {"source": p.source, "subject": args.subject, **ceiling})


if __name__ == "__main__":
    sys.exit(run(main))
