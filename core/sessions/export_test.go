package sessions

// PendingJobs is how many jobs wait for this instance's next queue pass.
func (s *Service) PendingJobs() int {
	s.passes.mu.Lock()
	defer s.passes.mu.Unlock()
	if s.passes.next == nil {
		return 0
	}
	return len(s.passes.next.jobs)
}

// AcceptsWaiting is how many accepts of session id hold or wait for its turn
// on this instance.
func (s *Service) AcceptsWaiting(id string) int {
	s.accepts.mu.Lock()
	defer s.accepts.mu.Unlock()
	if tu := s.accepts.m[id]; tu != nil {
		return tu.refs
	}
	return 0
}
