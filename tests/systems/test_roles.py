"""A system plays five small roles; the System contract is their union and adds nothing."""

from __future__ import annotations

from rdlens.systems import ROLES, System, all_systems


def own_members(cls: type) -> set[str]:
    return {n for n in vars(cls) if not n.startswith("_")}


def test_every_member_of_a_system_belongs_to_exactly_one_role():
    per_role = [own_members(role) for role in ROLES]
    assert own_members(System) == set()  # the contract is only its roles
    every = [n for members in per_role for n in members]
    assert len(every) == len(set(every))  # no name in two roles
    public = {n for n in dir(System) if not n.startswith("_")}
    assert public == set(every)


def test_each_role_is_small():
    sizes = {role.__name__: len(own_members(role)) for role in ROLES}
    assert max(sizes.values()) <= 13, sizes
    assert len(ROLES) == 5


def test_every_registered_system_overrides_only_members_of_its_roles():
    known = {n for role in ROLES for n in own_members(role)}
    for system in all_systems():
        extra = {n for klass in type(system).__mro__ if klass not in (*ROLES, System, object)
                 for n in own_members(klass)} - known
        assert extra == set(), (system.name, sorted(extra))  # helpers of an adapter are private (_name)
