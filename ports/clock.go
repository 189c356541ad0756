package ports

import "time"

// Clock tells the time. Core never calls time.Now directly, so tests move time instead of sleeping.
type Clock interface {
	Now() time.Time
}
