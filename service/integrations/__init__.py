"""Shops in: Stripe, Shopify and WooCommerce orders and refunds, by their own webhooks."""
