"""Read queries behind the REST contract (spec/rest-api.md), one module per resource."""
