// Package push registers users' devices and sends events as push
// notifications to the users who cannot receive them over a WebSocket
// (docs/contract.md §12).
//
// Devices validates and stores each user's one device (PUT and DELETE
// /api/me/device).
//
// Notifier takes every event once, on the instance where it happened, and
// decides for each recipient, off the request path: a recipient with an open
// WebSocket on any instance (ports.Presence) gets it there and no push; one
// without a connection and with a registered device gets a push
// (ports.Pusher); one without a device gets nothing more. Notify only puts one
// job per recipient into a bounded queue and never waits: when the queue is
// full the job is dropped and counted, so a slow or failing push service never
// slows a request. A fixed set of workers, started and stopped by the app's
// lifecycle, take the jobs; each lookup and each push has its own deadline.
//
// When the presence lookup fails (Valkey is down), the recipient is treated as
// not connected: pushing an event the app may also receive over its
// WebSocket costs a duplicate notification, while not pushing could lose an
// offer. Users connected to this instance are known without Valkey and are
// never pushed.
//
// A token the push service reports unregistered is dropped from the store,
// unless the user registered another token meanwhile.
package push
