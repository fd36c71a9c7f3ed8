"""Controllers: the reconcilers that run scheduling in the control plane.

``_controller`` holds :class:`~modelplane.scheduling.ResourceClaimController` (allocation and
deallocation of ResourceClaims, admission through queues) and ``_claims`` the controllers that
keep one ResourceClaim per Endpoint replica, per Job replica and per Agent; ``_drivers`` the
``DriverMismatch`` condition of Nodes whose driver a DeviceClass does not accept. They are the only
part of scheduling that reads and writes the store.

The modules are private: the public names are re-exported by :mod:`modelplane.scheduling`.
"""
