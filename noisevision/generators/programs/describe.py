"""Programs in words: one image's sampled program as a readable, indented expression."""

from __future__ import annotations

import math

from torch import Tensor

from noisevision.generators.programs.operators import (
    COMBINATORS,
    CPPN_ACTIVATIONS,
    DOMAIN_OPS,
    FIELD_OPS,
    FINISHES,
    PALETTES,
    Op,
    _fmt,
    _lerp,
    _loglerp,
)


def _op_text(op: Op, u: Tensor) -> str:
    return op.text({k: float(v.reshape(-1)[0]) for k, v in op.params(u.reshape(1, -1)).items()})


def describe_program(p: dict[str, Tensor], depth: int) -> str:
    """One image's program (sample_program's tensors without the batch dimension) in words."""
    lines: list[str] = []
    if int(p["grammar"]) == 0:
        u = p["cppn_u"]
        acts = [list(CPPN_ACTIVATIONS)[a] for a in p["acts"].tolist() if a < len(CPPN_ACTIVATIONS)]
        k = int(_lerp(1, 7, u[2:3]).floor())
        lines.append(
            f"cppn: inputs (x, y, r, sin {k}θ, cos {k}θ, 3 Fourier features) of "
            f"p = rotate({math.degrees(float(u[1]) * 2 * math.pi):.0f}°, "
            f"scale({_fmt(float(_loglerp(0.5, 3, u[0:1])))}, p))"
        )
        lines.append(
            f"  {len(acts)} hidden layer(s) of {int(p['width'])} units: {' → '.join(acts)} → 3 outputs"
        )
        colour = (
            f"colour: {_palette_text(p)}, blended {float(p['direct']) * 70:.0f}% with a random colour matrix"
        )
    else:
        ops = p["global_ops"].tolist()
        chain = [_op_text(DOMAIN_OPS[int(o)], p["global_u"][s]) for s, o in enumerate(ops)]
        chain = [c for c in chain if c != "p"]
        lines.append("shader: p = " + (" ∘ ".join(reversed(chain)) + " (x, y)" if chain else "(x, y)"))
        lines.append("  field = " + _node_text(p, 0, "  "))
        colour = f"colour: {_palette_text(p)}"
    finish = FINISHES[int(p["finish"])]
    lines.append(
        f"{colour}; saturation {float(p['saturation']):.2f}; finish: {finish}, blur {float(p['soften']):.2f}"
    )
    return "\n".join(lines)


def _palette_text(p: dict[str, Tensor]) -> str:
    contrast = f"contrast {_fmt(float(p['contrast']))}"
    return f"{PALETTES[int(p['palette'])]} palette, {contrast}"


def _node_text(p: dict[str, Tensor], slot: int, indent: str) -> str:
    if bool(p["branch"][slot]):
        comb = _op_text(COMBINATORS[int(p["comb_ops"][slot])], p["comb_u"][slot])
        inner = indent + "  "
        a, b = _node_text(p, 2 * slot + 1, inner), _node_text(p, 2 * slot + 2, inner)
        return f"{comb}(\n{inner}{a},\n{inner}{b})"
    ops = p["leaf_ops"][slot].tolist()
    chain = [_op_text(DOMAIN_OPS[int(o)], p["leaf_u"][slot, s]) for s, o in enumerate(ops)]
    chain = [c for c in chain if c != "p"]
    where = " ∘ ".join(reversed(chain)) + " p" if chain else "p"
    return f"{_op_text(FIELD_OPS[int(p['field_ops'][slot])], p['field_u'][slot])} at {where}"
