"""`leadflow demo`: the speed-to-lead loop on one screen, run by the real server and the real worker.

The demo opens a database with the demo rules (three managers, a chain to the head of sales, 20-second deadlines),
serves the HTTP API on loopback with uvicorn in a thread, runs the worker in this process, posts leads over HTTP at
a steady pace and plays the managers, who record their contacts through the API as a CRM integration would.
Everything on screen is read back from the API or the database: the demo decides nothing about a lead itself.

leads.py makes the leads, managers.py the managers' reactions, board.py reads the database back, screen.py draws,
driver.py runs the loop, run.py starts and stops the server and the worker around it.
"""

from leadflow.demo.board import DemoSummary
from leadflow.demo.driver import DEMO_NOTE
from leadflow.demo.run import DEMO_RULES, DemoError, demo_rules, run_demo

__all__ = ["DEMO_NOTE", "DEMO_RULES", "DemoError", "DemoSummary", "demo_rules", "run_demo"]
