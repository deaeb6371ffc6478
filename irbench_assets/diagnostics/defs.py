"""Dagster assets of the mechanistic diagnostics: one asset per analysis, JSON + PNG under outputs/.

The two that run the models over timelines (xVal zero-out audit, attention washout) go through the same
compute resource as training (local subprocess or SLURM); the embedding-only ones run in process.
"""

from pathlib import Path

import dagster as dg

from irbench_assets.compute.resource import IrbenchCompute
from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.diagnostics.common import DEFAULT_HANDLES, OUTPUTS, default_arms, output_dir
from irbench_assets.diagnostics.payload import run_diagnostic
from irbench_assets.markdown import png_markdown
from irbench_assets.models.defs import checkpoint
from irbench_assets.storage import outputs_dir

GPU_DIAGNOSTICS = ("xval_zero_audit", "attention_washout")
DESCRIPTIONS = {
    "xval_zero_audit": "xVal near-zero audit: share of [NUM] scale factors within ±0.1 and hidden-state norm vs "
    "|z| per layer (xVal-CN vs xVal-Aff).",
    "attention_washout": "Soft vs discrete: per layer × head attention share to numeric keys, and contextual "
    "cross-entropy of categorical tokens after a numeric vs a categorical token.",
    "clinical_boundary_probe": "Can value-bin embeddings separate normal from abnormal bins (K, glucose, "
    "creatinine, Hb, troponin)? Leave-one-out logistic regression per lab × granularity.",
    "embedding_geometry": "Cosine heatmaps, PCA and the U-shape metric of value-bin embeddings (shared vs fused).",
    "potassium_geometry_grid": "Serum potassium: breakpoints vs unique breakpoints, missing fused bins, PCA panels.",
    "sparsity_distance": "Embedding drift from the saved initial weights vs train token frequency.",
}


def _arms(name: str, home: Path) -> list[dict]:
    arms = [a for a in default_arms(name, home) if (Path(a.model_dir) / "summary.json").exists()]
    return [{"model_dir": str(a.model_dir), "tokenized_dir": str(a.tokenized_dir), "name": a.name} for a in arms]


def _metadata(summary: dict, out: Path, name: str) -> dict:
    meta: dict = {"path": dg.MetadataValue.path(str(out))}
    if summary.get("preview_md"):
        meta["preview"] = dg.MetadataValue.md(str(summary["preview_md"]))
    for png in OUTPUTS[name][2]:
        if (out / png).exists():
            meta[png.removesuffix(".png")] = dg.MetadataValue.md(png_markdown(out / png))
    return meta


def _diagnostic_asset(name: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        group_name="diagnostics",
        deps=[checkpoint],
        kinds={"pytorch"} if name in GPU_DIAGNOSTICS else {"numpy"},
        tags={"irbench/stage": "diagnostics"},
        description=DESCRIPTIONS[name],
    )
    def _asset(context: dg.AssetExecutionContext, settings: IrbenchSettings, compute: IrbenchCompute) -> dg.MaterializeResult:
        s = settings.get()
        out = output_dir(outputs_dir(s), name)
        arms = _arms(name, s.home)
        if not arms:
            # e.g. `irbench materialize --experiment exp3`: the models this analysis reads are not trained yet.
            # Record the skip; the asset becomes stale (and reruns) once any of its checkpoints is materialized.
            wanted = ", ".join(f"{e}.{h}" for e, h in DEFAULT_HANDLES[name])
            context.log.warning(f"diagnostic {name}: none of its models is trained yet ({wanted}); skipped")
            return dg.MaterializeResult(metadata={"skipped": f"none of its models is trained yet ({wanted})"})
        args = {"arms": arms, "out_dir": str(out)}
        if name in GPU_DIAGNOSTICS:
            res = compute.run(context, stage="diagnostics", payload="irbench_assets.diagnostics.payload:run_diagnostic",
                              args={"name": name, "args": args})
            assert isinstance(res, dg.MaterializeResult)
            return dg.MaterializeResult(metadata={**(res.metadata or {}), **_metadata({}, out, name)})
        summary = run_diagnostic(name=name, args=args, log=lambda rec: context.log.debug(str(rec)))
        return dg.MaterializeResult(metadata=_metadata(summary, out, name))

    return _asset


diagnostic_assets = [_diagnostic_asset(n) for n in DESCRIPTIONS]
defs = dg.Definitions(assets=diagnostic_assets)
