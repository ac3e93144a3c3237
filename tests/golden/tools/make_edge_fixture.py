#!/usr/bin/env python3
"""Writes tests/golden/fixtures/edge_raw (a synthetic data/1_raw exercising fallbacks, pandas boolean parsing,
CSV quoting, universal newlines, Python str.strip() and Jinja2 whitespace). Written byte-exact with write_bytes
because several files contain \r, NBSP and control characters.

Usage: python3 tests/golden/tools/make_edge_fixture.py tests/golden/fixtures/edge_raw
"""
from pathlib import Path
import sys
root = Path(sys.argv[1])
def w(rel, data: str):
    p = root / rel; p.parent.mkdir(parents=True, exist_ok=True); p.write_bytes(data.encode("utf-8"))
# active column: mixed-case booleans (pandas parses them case-insensitively; all must be bool-like or nothing is active)
w("concepts/concepts_metadata.csv",
  "concept_id,name,active\n"
  "zeta-first,Zeta First,True\n"
  "Alpha_2,Alpha Two,tRuE\n"
  "gamma.dot,\"Gamma, \"\"Quoted\"\"\",TRUE\n"
  "off,Off Concept,FALSE\n"
  "\n"
  "delta,Delta <b>&</b> {{ not_rendered }},true\n")
# zeta-first: article used; CRLF + lone CR line endings; strip() removes NBSP, U+3000 and U+001F at the ends
w("concepts/descriptions-article/zeta-first.txt",
  "\u00a0\u3000 \r\nZeta article line 1.  \r\n\u00a0\r\n  Zeta line 3 with {{ braces }} and {% raw %}.\rZeta line 4.\r\n\t\x1f\x1c\u00a0\n")
w("concepts/descriptions-paragraph/zeta-first.txt", "Zeta paragraph (must not be used).\n")
w("concepts/descriptions-sentence/zeta-first.txt", "Zeta sentence (must not be used).\n")
# Alpha_2: no article -> paragraph
w("concepts/descriptions-paragraph/Alpha_2.txt", "\n\nAlpha paragraph.\n\nSecond paragraph.\n\n")
w("concepts/descriptions-sentence/Alpha_2.txt", "Alpha sentence (must not be used).")
# gamma.dot: whitespace-only article, empty paragraph -> sentence
w("concepts/descriptions-article/gamma.dot.txt", " \n\u00a0\n\u2003\t")
w("concepts/descriptions-paragraph/gamma.dot.txt", "")
w("concepts/descriptions-sentence/gamma.dot.txt", "Gamma sentence.\n")
# off: inactive
w("concepts/descriptions-paragraph/off.txt", "Off paragraph.")
# delta: only a non-.txt file -> falls back to its name
w("concepts/descriptions-article/delta.md", "ignored: not a .txt file")
# orphan file for a concept not in the CSV
w("concepts/descriptions-paragraph/orphan.txt", "Orphan.")

w("llm_models.csv",
  "id,model,provider,display_name,for_generation,for_evaluation,specialization\n"
  "m.one,vendor/m-one,x,\"M, One\",TRUE,False,a\n"
  "m_two,vendor/m_two:free,x,M Two,false,true,b\n"
  "m-3,vendor/m3,x,M3,True,TRUE,c\n")
# generation templates: active column as integers 1/0 (int column; 1 == True)
w("generation_templates.csv",
  "template_id,template_name,description,active\n"
  "ws-probe,WS Probe,\"whitespace, loops\",1\n"
  "inactive-probe,Inactive,never used,0\n"
  "ends-with-endfor,Ends,loop at end,1\n")
w("generation_templates/ws-probe.txt",
  "\n \u00a0\n  Header line with trailing spaces  \r\n\u00a0\r\n"
  "{% for concept in concepts %}\r\n"
  "**{{ concept.name }}** [{{ concept.concept_id }}]\r\n"
  "{{ concept.content }}\r\n"
  "\r\n"
  "{% endfor %}\r\n"
  "\u00a0\n"
  "Footer: undefined=[{{ nothing }}].\n\n  \n")
w("generation_templates/inactive-probe.txt", "never rendered in pipeline mode {{ concepts }}")
w("generation_templates/ends-with-endfor.txt",
  "Concepts:{% for c in concepts %} {{ c.name }};{% endfor %}\n"
  "{% for c in concepts %}\n- {{ c.content }}\n{% endfor %}\n")
w("evaluation_templates.csv",
  "template_id,template_name,description,active\n"
  "eval-a,Eval A, leading space,True\n"
  "eval-off,Eval Off,x,False\n")
w("evaluation_templates/eval-a.txt", "\n\nEssay:\n{{ response }}\n\nSCORE: X\n\n")
w("evaluation_templates/eval-off.txt", "Off: {{ response }}")
