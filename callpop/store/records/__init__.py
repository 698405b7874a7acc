"""What people record about clients: clients and phones, agreements, promises, notes, payments,
receivables; the declared fields and schemas that validate them, and the regular-client rule."""
