#!/usr/bin/env python3
"""Cross-check: run the REAL seed asset functions (zby/DayDreamingDayDreaming @ f2d159c) with a stubbed `dagster`
and write the same files as seed_reference.py, so the two can be diffed. Not needed to regenerate goldens.

Needs pandas 2.3.1 (the seed's uv.lock version) and jinja2 3.1.6, e.g. in a venv:
  python3 -m venv /tmp/pdvenv && /tmp/pdvenv/bin/pip install pandas==2.3.1 jinja2==3.1.6
and a checkout of the seed (only its daydreaming_dagster/ package is used):
  git -C <seed-repo> archive f2d159c3d6ff daydreaming_dagster | tar -x -C /tmp/seedsrc
Usage:
  /tmp/pdvenv/bin/python tests/golden/tools/run_seed_assets.py --seed-src /tmp/seedsrc \
      --raw DIR --out DIR [--k-max 4] [--level paragraph] [--mode pipeline|all-templates]
"""
import sys, os, argparse, tempfile, shutil
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("--seed-src", type=Path, required=True, help="directory containing daydreaming_dagster/ at f2d159c")
ap.add_argument("--raw", type=Path, required=True); ap.add_argument("--out", type=Path, required=True)
ap.add_argument("--k-max", type=int, default=4); ap.add_argument("--level", default="paragraph")
ap.add_argument("--mode", default="pipeline", choices=("pipeline", "all-templates"))
a = ap.parse_args()
a.raw = a.raw.resolve(); a.out = a.out.resolve()

# Private copy of the seed package with the package __init__ files that import all of dagster blanked out,
# plus a minimal stub of the dagster API the loaded modules touch.
work = Path(tempfile.mkdtemp())
shutil.copytree(a.seed_src / "daydreaming_dagster", work / "pkg" / "daydreaming_dagster")
for init in ("assets/__init__.py", "resources/__init__.py"):
    (work / "pkg" / "daydreaming_dagster" / init).write_text("")
(work / "stubs" / "dagster").mkdir(parents=True)
(work / "stubs" / "dagster" / "__init__.py").write_text('''
class Failure(Exception):
    def __init__(self, description=None, metadata=None):
        super().__init__(description); self.description = description
class _MV:
    def __getattr__(self, name): return lambda *a, **k: (a[0] if a else None)
MetadataValue = _MV()
def asset(*a, **k):
    if a and callable(a[0]) and not k: return a[0]
    return lambda f: f
class DynamicPartitionsDefinition:
    def __init__(self, name): self.name = name
class IOManager: pass
InputContext = OutputContext = object
''')
sys.path[:0] = [str(work / "stubs"), str(work / "pkg")]
import pandas as pd
from daydreaming_dagster.assets import raw_data, core, llm_generation, llm_evaluation
from daydreaming_dagster.resources.io_managers import PartitionedTextIOManager

class Log:
    def info(self, *x): pass
    error = warning = info
class Inst:
    def __init__(self): self.p = {}
    def get_dynamic_partitions(self, n): return list(self.p.get(n, []))
    def delete_dynamic_partition(self, n, k): self.p[n].remove(k)
    def add_dynamic_partitions(self, n, ks): self.p.setdefault(n, []).extend(ks)
class Res: pass
class Ctx:
    def __init__(self, **kw):
        self.log = Log(); self.instance = Inst(); self.resources = Res(); self.partition_key = None
        for k, v in kw.items(): setattr(self.resources, k, v)
    def add_output_metadata(self, m): pass
tmpdata = Path(tempfile.mkdtemp()) / "data"
(tmpdata / "1_raw").parent.mkdir(parents=True)
shutil.copytree(a.raw, tmpdata / "1_raw")
cfg = Res(); cfg.k_max = a.k_max; cfg.description_level = a.level
os.chdir(tmpdata.parent)  # ComboIDManager writes data/combo_mappings.csv relative to cwd
ctx = Ctx(data_root=str(tmpdata), experiment_config=cfg)
concepts = raw_data.concepts(ctx)
models = raw_data.llm_models(ctx)
gt = raw_data.generation_templates(ctx)
et = raw_data.evaluation_templates(ctx)
combos = core.content_combinations(ctx, concepts)
out = a.out; out.mkdir(parents=True, exist_ok=True)
if a.mode == "pipeline":
    ccsv = core.content_combinations_csv(ctx, combos)
    gtasks = core.generation_tasks(ctx, combos, models, gt)
    gtasks.to_csv(out / "generation_tasks.csv", index=False)
    gtasks_rt = pd.read_csv(out / "generation_tasks.csv")  # csv_io_manager round trip
    etasks = core.evaluation_tasks(ctx, gtasks_rt, models, et)
    ccsv.to_csv(out / "content_combinations_csv.csv", index=False)
    etasks.to_csv(out / "evaluation_tasks.csv", index=False)
    cm = pd.read_csv("data/combo_mappings.csv"); cm["created_at"] = "CREATED_AT"
    cm.to_csv(out / "combo_mappings.csv", index=False)
    io = PartitionedTextIOManager(out / "generation_prompts", overwrite=True)
    for tid in gtasks_rt["generation_task_id"]:
        ctx.partition_key = tid
        prompt = llm_generation.generation_prompt(ctx, gtasks_rt, combos, gt)
        class OC: partition_key = tid; log = Log()
        io.handle_output(OC, prompt)
else:
    first = combos[0]
    for tid in gt["template_id"]:
        tasks = pd.DataFrame([{"generation_task_id": "x", "combo_id": first.combo_id, "generation_template": tid,
                               "generation_model": "m", "generation_model_name": "m"}])
        ctx.partition_key = "x"
        (out / f"{tid}.txt").write_text(llm_generation.generation_prompt(ctx, tasks, combos, gt))
    essays = Path(tempfile.mkdtemp())
    (essays / "g.txt").write_text("<essay text>\nsecond line\n\n  indented")
    ctx.resources.parsed_generation_io_manager = PartitionedTextIOManager(essays, overwrite=True)
    for tid in et["template_id"]:
        tasks = pd.DataFrame([{"evaluation_task_id": "e", "generation_task_id": "g", "evaluation_template": tid,
                               "evaluation_model": "m", "evaluation_model_name": "m"}])
        ctx.partition_key = "e"
        (out / f"eval__{tid}.txt").write_text(llm_evaluation.evaluation_prompt(ctx, tasks, et))
print("seed run ok:", [c.combo_id for c in combos])
