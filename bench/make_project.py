#!/usr/bin/env python3
"""Write a synthetic daydream project for benchmarking (deterministic stages only).

    bench/make_project.py DIR --concepts N --k K --gen-models M
                          [--eval-models E] [--eval-templates T] [--gen-templates G] [--no-prompt-files]

Copies the repository's pipeline.yaml and real templates, then generates N concepts
(deterministic text), M generation + E evaluation models and T active evaluation templates.
Generation tasks = C(N, K) * M * G (G active generation templates, creative-synthesis-v6 first).
"""
import argparse
import csv
import math
import random
import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GEN_TEMPLATE = "creative-synthesis-v6"
# The stages benchmarked: everything up to the prompts. LLM stages (responses, evaluation
# prompts) are dropped from the copied pipeline.yaml so a run stays offline and deterministic.
KEEP_STAGES = {"concepts", "llm_models", "generation_templates", "evaluation_templates",
               "content_combinations", "generation_tasks", "evaluation_tasks", "generation_prompt"}

WORDS = """attention memory insight network search model signal noise pattern analogy
constraint objective feedback loop novelty verifier generator gap market moat evidence
hypothesis experiment prior art synthesis mechanism structure abstraction scale resource
exploration exploitation reward bias variance emergence incentive diffusion cortex
default mode wandering recombination idea domain transfer metric benchmark latency""".split()


def paragraph(rng, name):
    """A deterministic 500-800 character paragraph about `name`."""
    target = rng.randint(500, 800)
    sentences = [f"{name} is a concept about {' '.join(rng.sample(WORDS, 3))}."]
    while sum(len(s) + 1 for s in sentences) < target:
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 16))]
        sentences.append(" ".join(words).capitalize() + rng.choice([".", ".", ";", "?"]))
    return " ".join(sentences)[:target].rsplit(" ", 1)[0].rstrip(";?.") + ".\n"


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def set_active(src, dst, active_ids):
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["active"] = "true" if r["template_id"] in active_ids else "false"
    write_csv(dst, list(rows[0].keys()), [list(r.values()) for r in rows])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path)
    ap.add_argument("--concepts", type=int, required=True)
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--gen-models", type=int, required=True)
    ap.add_argument("--eval-models", type=int, default=1)
    ap.add_argument("--eval-templates", type=int, default=1)
    ap.add_argument("--gen-templates", type=int, default=1)
    ap.add_argument("--no-prompt-files", action="store_true")
    a = ap.parse_args()

    d = a.dir
    if d.exists():
        shutil.rmtree(d)
    raw = d / "data/1_raw"
    (raw / "concepts").mkdir(parents=True)
    shutil.copytree(REPO / "templates", d / "templates")

    # pipeline.yaml: k_max, and optionally keep prompts in the store only.
    y = (REPO / "pipeline.yaml").read_text()
    head, stages = y.split("\nstages:\n", 1)
    blocks = re.split(r"(?m)^(?=  \S)", stages)  # one block per stage (plus leading comments)
    names = [re.match(r"  (\w+):", b) for b in blocks]
    y = head + "\nstages:\n" + "".join(b for b, n in zip(blocks, names) if n is None or n[1] in KEEP_STAGES)
    y, n = re.subn(r"(?m)^(\s*k_max:\s*)\d+", rf"\g<1>{a.k}", y)
    assert n == 1, "k_max not found in pipeline.yaml"
    if a.no_prompt_files:
        y, n = re.subn(r"(?m)^(  generation_prompt:\n(?:    .*\n)*)", r"\g<1>    materialize: false\n", y)
        assert n == 1, "generation_prompt stage not found in pipeline.yaml"
    (d / "pipeline.yaml").write_text(y)

    # Templates: creative-synthesis-v6 and the first G-1 others for generation; the first T
    # evaluation templates.
    with open(REPO / "data/1_raw/generation_templates.csv", newline="") as f:
        gen_ids = [r["template_id"] for r in csv.DictReader(f) if r["template_id"] != GEN_TEMPLATE]
    assert a.gen_templates <= len(gen_ids) + 1, f"at most {len(gen_ids) + 1} generation templates"
    set_active(REPO / "data/1_raw/generation_templates.csv", raw / "generation_templates.csv",
               {GEN_TEMPLATE, *gen_ids[: a.gen_templates - 1]})
    with open(REPO / "data/1_raw/evaluation_templates.csv", newline="") as f:
        eval_ids = [r["template_id"] for r in csv.DictReader(f)]
    assert a.eval_templates <= len(eval_ids), f"at most {len(eval_ids)} evaluation templates"
    set_active(REPO / "data/1_raw/evaluation_templates.csv", raw / "evaluation_templates.csv",
               set(eval_ids[: a.eval_templates]))

    # Models: M generation-only, E evaluation-only.
    models = [[f"gen_{i:02d}", f"bench/gen-{i:02d}", "bench", f"Gen {i}", "true", "false", "general"]
              for i in range(1, a.gen_models + 1)]
    models += [[f"eval_{i:02d}", f"bench/eval-{i:02d}", "bench", f"Eval {i}", "false", "true", "general"]
               for i in range(1, a.eval_models + 1)]
    write_csv(raw / "llm_models.csv",
              ["id", "model", "provider", "display_name", "for_generation", "for_evaluation", "specialization"],
              models)

    # Concepts: a paragraph each; every third also has a sentence.
    rng = random.Random(1234)
    for level in ("sentence", "paragraph", "article"):
        (raw / f"concepts/descriptions-{level}").mkdir()
    meta = []
    for i in range(1, a.concepts + 1):
        cid, name = f"concept-{i:04d}", f"Concept {i} ({rng.choice(WORDS)})"
        meta.append([cid, name, "True"])
        (raw / f"concepts/descriptions-paragraph/{cid}.txt").write_text(paragraph(rng, name))
        if i % 3 == 0:
            (raw / f"concepts/descriptions-sentence/{cid}.txt").write_text(
                f"{name} links {rng.choice(WORDS)} to {rng.choice(WORDS)}.\n")
    write_csv(raw / "concepts/concepts_metadata.csv", ["concept_id", "name", "active"], meta)

    combos = math.comb(a.concepts, a.k)
    gen = combos * a.gen_models * a.gen_templates
    print(f"{d}: {combos} combos, {gen} generation tasks, "
          f"{gen * a.eval_models * a.eval_templates} evaluation tasks")


if __name__ == "__main__":
    main()
