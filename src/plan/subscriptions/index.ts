/**
 * Change notifications: FHIR R4 Subscriptions (rest-hook), classic and topic-based (R4
 * Subscriptions Backport), delivered at least once from a durable outbox. See ./README.md.
 */
export { type SubscriptionRules, subscriptionAccess } from './access.js';
export { registerSubscriptionDefinitions, subscriptionExtensionDefinitions } from './definitions.js';
export { type Delivery, type DeliveryOptions, startDelivery } from './delivery.js';
export { onOutboxWritten, SubscriptionHook, subscriptionHook } from './hook.js';
export { notificationBundle, SIGNATURE_HEADER, signature, subscriptionStatus, verifySignature } from './notification.js';
export { subscriptionsMigration } from './migration.js';
export { BACKPORT_PROFILE, PLAN_CHANGED_TOPIC, PLAN_TYPES, readSubscription, SUBSCRIPTION_CAPABILITY_EXTENSIONS, SUBSCRIPTION_EXTENSION, type SubscriptionSpec } from './spec.js';
export { subscriptionStatusOperation } from './status.js';
