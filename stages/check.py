"""DVC stage check: params.yaml and the inputs it names, checked before any other stage runs.

Every other stage depends on this stage's output, so DVC runs it first whenever params.yaml
changed; when it fails, DVC stops before it has deleted any other stage's outputs (DVC removes
a stage's outputs just before running its command).  It checks the whole params file (the
schema, with the cross-checks of ``data.eeg: raw``: the ERP window inside the epochs, the
ERP channels among those preprocessing keeps), the OpenCLIP model name, that torch can
use the devices named (embed.device, the trainable mapper's device) with
embed.precision, and for ``data.source: local`` that ``data.local_dir`` holds the
release layout for every subject (the raw layout with ``data.eeg: raw``).  It writes

- ``--out``: a constant file, so that a successful check never makes another stage stale;
- ``--mapper``: the chosen mapper's own settings (``train.<mapper>``) and the layers
  ``train.layer`` uses, what train@N depends on, so that a change to another mapper's section
  or to an unused layer of ``embed.layers`` reruns nothing.
"""

from __future__ import annotations

import sys

import _workspace  # noqa: F401  (this workspace's src/ first on sys.path)

from neurovision.devices import check_device
from neurovision.io import save_json
from neurovision.params import layer_name
from neurovision.preprocess import check_channel_params
from neurovision.release import check_local_layout
from neurovision.stage import params_from, parser, run
from neurovision.vision.encoder import check_model_name, check_precision


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", required=True, help="constant file written when all is well")
    ap.add_argument("--mapper", required=True, help="JSON file: the chosen mapper's settings")
    args = ap.parse_args(argv)
    params = params_from(args)  # the whole file: unknown keys, types, bounds, choices
    check_model_name(params.embed.model)
    # a device this machine lacks fails here, before DVC deletes any stage's outputs
    check_precision(params.embed.precision, check_device(params.embed.device, "embed.device"))
    if params.train.mapper in ("contrastive", "align"):
        check_device(getattr(params.train, params.train.mapper).device,
                     f"train.{params.train.mapper}.device")
    check_channel_params(params)
    if params.data.source == "local":
        check_local_layout(params.data.local_dir, params.data.subjects, params.data.eeg)
    mapper = params.train.mapper
    layer = params.train.layer
    save_json(args.mapper, {
        "mapper": mapper, "settings": getattr(params.train, mapper).model_dump(mode="json"),
        "layer": layer if layer == "select" else params.train.layers(),
        "candidates": ([layer_name(x) for x in params.embed.layers] if layer == "select"
                       else None)})
    save_json(args.out, {"checked": "params.yaml and the inputs it names"})


if __name__ == "__main__":
    sys.exit(run(main))
