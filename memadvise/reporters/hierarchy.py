"""What is alive at the peak, arranged as the model's module hierarchy (for the tree pictures).

The hierarchy comes from the dotted qualified names of ``Profile.layers`` (``""`` is the model itself);
the bytes come from ``Profile.peak_holders``. Holders that are not modules of the model — ``<inputs>``,
``<autograd>``, ``<optimizer>`` — hang directly under the root, so the root's total is the whole peak.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from memadvise.model.profile import Profile


@dataclass(frozen=True)
class ModuleNode:
    """One module and everything under it, with the bytes each holds at the peak.

    ``own`` counts what the module itself holds, by category; ``by_category`` and ``total`` add its
    descendants. ``children`` are sorted largest first (ties keep the model's definition order).
    """

    name: str
    local_name: str
    type: str
    own: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)
    total: int = 0
    children: tuple[ModuleNode, ...] = ()

    @property
    def own_total(self) -> int:
        return sum(self.own.values())

    @property
    def is_model_module(self) -> bool:
        """False for ``<inputs>``, ``<autograd>``, ``<optimizer>`` and other holders outside the model."""
        return not self.name.startswith("<")

    def walk(self) -> list[ModuleNode]:
        """This node and all its descendants, depth first, in display order."""
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes


def _parent(name: str, known: set[str]) -> str:
    if name == "" or name.startswith("<"):
        return ""
    parts = name.split(".")
    for k in range(len(parts) - 1, 0, -1):
        candidate = ".".join(parts[:k])
        if candidate in known:
            return candidate
    return ""


def _local_name(name: str, parent: str) -> str:
    if parent and name.startswith(parent + "."):
        return name[len(parent) + 1 :]
    return name


def module_hierarchy(profile: Profile) -> ModuleNode:
    """The root node (the model, ``""``) of the peak's holders arranged by module hierarchy."""
    types: dict[str, str] = {}
    order: dict[str, int] = {}
    for layer in profile.layers:
        types.setdefault(layer.name, layer.type)
        order.setdefault(layer.name, len(order))
    own: dict[str, dict[str, int]] = defaultdict(dict)
    for holder in profile.peak_holders:
        cats = own[holder.module]
        cats[holder.category] = cats.get(holder.category, 0) + holder.bytes
        if holder.module not in order:
            order[holder.module] = len(order) + (1 << 30 if holder.module.startswith("<") else 0)
    types.setdefault("", profile.model)
    order.setdefault("", -1)

    known = set(order)
    children: dict[str, list[str]] = defaultdict(list)
    for name in sorted(known, key=lambda n: order[n]):
        if name != "":
            children[_parent(name, known)].append(name)

    def build(name: str, parent: str) -> ModuleNode:
        kids = [build(child, name) for child in children.get(name, [])]
        kids.sort(key=lambda node: -node.total)  # stable: equal totals keep definition order
        mine = {c: n for c, n in own.get(name, {}).items() if n}
        by_category = dict(mine)
        for kid in kids:
            for c, n in kid.by_category.items():
                by_category[c] = by_category.get(c, 0) + n
        return ModuleNode(
            name=name,
            local_name=_local_name(name, parent),
            type=types.get(name, ""),
            own=mine,
            by_category=by_category,
            total=sum(by_category.values()),
            children=tuple(kids),
        )

    return build("", "")
