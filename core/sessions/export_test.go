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
