"""Reading the host pip's failure (builder/sdist.blockers): what to build from source next."""
from __future__ import annotations

from packaging.specifiers import SpecifierSet

from boxer_py.builder.sdist import blockers

# pip 24's words when a dependency has no wheel for the guest (seen building a real Dockerfile).
CONFLICT = """\
ERROR: Cannot install discord.py because these package versions have conflicting dependencies.

The conflict is caused by:
    aiohttp 3.6.2 depends on multidict<5.0 and >=4.5
    aiohttp 3.6.0 depends on multidict<5.0 and >=4.0

Additionally, some packages in these conflicts have no matching distributions available for your environment:
    multidict

To fix this you could try to:
"""


def test_a_conflict_names_the_blocker_with_the_versions_its_dependents_allow():
    assert blockers(CONFLICT) == {"multidict": [SpecifierSet("<5.0,>=4.5"), SpecifierSet("<5.0,>=4.0")]}


def test_a_missing_distribution_names_it_with_its_specifier():
    found = blockers("ERROR: Could not find a version that satisfies the requirement zope.interface>=5 (from x)\n"
                     "ERROR: No matching distribution found for zope.interface>=5\n")
    assert found == {"zope-interface": [SpecifierSet(">=5")]}
