"""dsr — dynamic spatial reasoning toolkit.

Stages (each may import earlier ones, never later ones):
``scene`` (4D scene record, geometry) → ``world`` (synthetic worlds) → ``extract`` (video → record)
→ ``qa`` (record → questions) → ``evaluate`` (evaluation) → ``gsm`` (model); ``cli`` wires them.
Importing ``dsr`` loads no backend, no torch and no renderer.
"""

__version__ = "0.1.0"
