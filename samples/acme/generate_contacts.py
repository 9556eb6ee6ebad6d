"""Writes contacts.jsonl: the sample tenant's 200 fictional contacts, the same on every run.

The first three are the demo's fixtures: 5100001 a normal lead, 5100002 opted out, 5100003 a VIP.
Of the 200, exactly 10 are VIPs (deal value over $50,000) and 8 are opted out (never a VIP).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

FIRST = [
    "Jordan",
    "Priya",
    "Mateo",
    "Aisha",
    "Lukas",
    "Mei",
    "Tomás",
    "Hannah",
    "Kwame",
    "Sofia",
    "Ravi",
    "Elena",
    "Noah",
    "Yuki",
    "Omar",
    "Chloe",
    "Diego",
    "Ingrid",
    "Samir",
    "Grace",
]
LAST = [
    "Reyes",
    "Shah",
    "García",
    "Okafor",
    "Becker",
    "Chen",
    "Silva",
    "Müller",
    "Mensah",
    "Rossi",
    "Iyer",
    "Novak",
    "Brooks",
    "Tanaka",
    "Haddad",
    "Martin",
    "López",
    "Larsen",
    "Khan",
    "Walsh",
]
COMPANIES = {
    "logistics": ["Northwind Freight", "Bluewater Shipping", "Tailwind Couriers"],
    "fintech": ["Ledgerly", "Coinbridge", "Paystream"],
    "healthcare": ["BrightPath Clinics", "Cedar Health", "Medlink Partners"],
    "retail": ["Harbor Lane", "Urban Pantry", "Fernwood Outfitters"],
    "manufacturing": ["Corvid Components", "Ironleaf Tools", "Summit Plastics"],
    "saas": ["Stackfield", "Cloudharbor", "Brightloop"],
}
TITLES = [
    "Head of Operations",
    "Operations Manager",
    "VP Operations",
    "Director of Finance Operations",
    "Revenue Operations Lead",
    "COO",
]
PLACES = [
    ("US", "America/New_York"),
    ("US", "America/Chicago"),
    ("US", "America/Los_Angeles"),
    ("CA", "America/Toronto"),
    ("GB", "Europe/London"),
    ("DE", "Europe/Berlin"),
    ("FR", "Europe/Paris"),
    ("NL", "Europe/Amsterdam"),
    ("AU", "Australia/Sydney"),
]


def contact(n: int, rng: random.Random, **fixed: object) -> dict[str, object]:
    industry = rng.choice(sorted(COMPANIES))
    company = rng.choice(COMPANIES[industry])
    first, last = rng.choice(FIRST), rng.choice(LAST)
    country, timezone = rng.choice(PLACES)
    domain = company.lower().replace(" ", "") + ".example"
    local = f"{first}.{last}".lower().encode("ascii", "ignore").decode()
    record: dict[str, object] = {
        "contact_id": 5100000 + n,
        "email": f"{local}.{n}@{domain}",
        "first_name": first,
        "last_name": last,
        "company": company,
        "job_title": rng.choice(TITLES),
        "industry": industry,
        "lifecycle_stage": "marketingqualifiedlead" if rng.random() < 0.2 else "lead",
        "country": country,
        "timezone": timezone,
        "vip": False,
        "deal_value_minor": 0,
        "opted_out": False,
        "created_at": f"2026-10-{rng.randint(1, 31):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
    }
    record.update(fixed)
    return record


def main() -> None:
    rng = random.Random(20261001)
    contacts = [
        contact(
            1,
            rng,
            industry="logistics",
            company="Northwind Freight",
            first_name="Jordan",
            last_name="Reyes",
            email="jordan.reyes@northwindfreight.example",
        ),
        contact(
            2,
            rng,
            opted_out=True,
            first_name="Priya",
            last_name="Shah",
            email="priya.shah@ledgerly.example",
            company="Ledgerly",
            industry="fintech",
        ),
        contact(
            3,
            rng,
            vip=True,
            deal_value_minor=12_000_000,
            first_name="Mateo",
            last_name="García",
            email="mateo.garcia@harborlane.example",
            company="Harbor Lane",
            industry="retail",
            job_title="COO",
        ),
    ]
    contacts += [contact(n, rng) for n in range(4, 201)]
    for n in rng.sample(range(3, 200), 9):  # nine more VIPs
        contacts[n].update(vip=True, deal_value_minor=rng.randint(51, 400) * 100_000)
    candidates = [i for i in range(3, 200) if not contacts[i]["vip"]]
    for n in rng.sample(candidates, 7):  # seven more opt-outs
        contacts[n]["opted_out"] = True
    out = Path(__file__).with_name("contacts.jsonl")
    out.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in contacts))
    print(f"wrote {len(contacts)} contacts to {out}")


if __name__ == "__main__":
    main()
