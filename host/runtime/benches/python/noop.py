"""The trivial action as a subprocess-per-call SOAR runs it: read JSON, answer JSON."""
import json
import sys

json.load(sys.stdin)
print(json.dumps({}))
