"""The flow file: its schema, the checks that name every problem, and its composition into a
running runtime (``open_flow``).
"""

from relaybaton.flow._compose import open_flow
from relaybaton.flow._file import FlowFile, load_flow, parse_flow

__all__ = ["FlowFile", "load_flow", "open_flow", "parse_flow"]
