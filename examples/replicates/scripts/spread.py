"""The spread of scores across the replicates of each generation task (standard library only).

usage: python3 spread.py SCORES.csv OUT.csv
"""
import csv
import statistics
import sys

scores_path, out_path = sys.argv[1], sys.argv[2]
by_task = {}
with open(scores_path, newline="") as f:
    for row in csv.DictReader(f):
        by_task.setdefault(row["generation_task_id"], []).append(row)
with open(out_path, "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["generation_task_id", "replicates", "scored", "scores", "mean", "stdev", "lowest", "highest"])
    for task in sorted(by_task):
        rows = sorted(by_task[task], key=lambda r: int(r["replicate"]))
        s = [float(r["score"]) for r in rows if r["score"]]
        w.writerow([
            task,
            len(rows),
            len(s),
            " ".join(r["score"] or "-" for r in rows),
            f"{statistics.mean(s):.2f}" if s else "",
            f"{statistics.stdev(s):.2f}" if len(s) > 1 else "",
            min(s) if s else "",
            max(s) if s else "",
        ])
