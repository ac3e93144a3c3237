"""Mean, lowest and highest score per answering model (standard library only).

usage: python3 by_model.py SCORES.csv OUT.csv
"""
import csv
import statistics
import sys

scores_path, out_path = sys.argv[1], sys.argv[2]
by_model = {}
with open(scores_path, newline="") as f:
    for row in csv.DictReader(f):
        if row["score"]:
            by_model.setdefault(row["model"], []).append(float(row["score"]))
with open(out_path, "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["model", "answers_scored", "mean", "lowest", "highest"])
    for model in sorted(by_model):
        s = by_model[model]
        w.writerow([model, len(s), f"{statistics.mean(s):.2f}", min(s), max(s)])
print(f"{sum(len(s) for s in by_model.values())} scores of {len(by_model)} models")
