"""What the demo platform holds: its APIs and plans, apps, token owners and extra fields."""

APIS = [
    (
        "Payments",
        "v2",
        "/payments",
        "Card and bank payments",
        [("Free", 60), ("Silver", 600), ("Gold", 6000)],
    ),
    ("Orders", "v1", "/orders", "Order management", [("Free", 60), ("Business", 3000)]),
    (
        "Customers",
        "v1",
        "/customers",
        "Customer profiles and consent",
        [("Standard", 300), ("Premium", 3000)],
    ),
    (
        "Shipping",
        "v1",
        "/shipping",
        "Rates, labels and tracking",
        [("Basic", 120), ("Express", 1200)],
    ),
    (
        "Catalog",
        "v3",
        "/catalog",
        "Products, prices and stock",
        [("Public", 100), ("Partner", 5000)],
    ),
]

APPS = [
    ("Acme Checkout", [("/payments", "Gold"), ("/orders", "Business")]),
    ("Globex Mobile", [("/customers", "Premium"), ("/catalog", "Partner")]),
    ("Initech Partner Portal", [("/catalog", "Public"), ("/orders", "Free")]),
    ("Umbrella Logistics", [("/shipping", "Express"), ("/orders", "Free")]),
    ("Stark Analytics", [("/customers", "Standard"), ("/payments", "Silver")]),
]

OWNERS = [
    "ana.souza@acme.example",
    "bruno.lima@globex.example",
    "carla.mendes@initech.example",
    "diego.rocha@umbrella.example",
    "elena.petrova@stark.example",
    "farah.khan@acme.example",
    "gustavo.alves@globex.example",
    "hana.sato@initech.example",
    "ivan.horvat@umbrella.example",
    "julia.nowak@stark.example",
    "Checkout backend (prod)",
    "Mobile app (iOS)",
    "Nightly sync job",
    "Partner: Soylent Corp",
    "QA automation",
]

EXTRA = [
    [["Cost center", "CC-1042"], ["Environment", "production"]],
    [["Ticket", "SUP-2291"]],
    [["Environment", "staging"], ["Contact", "platform-team@example.com"]],
    [],
    [["Contract", "MSA-2026-17"], ["Region", "eu-west"]],
]
