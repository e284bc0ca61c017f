{{/* Names and labels. */}}
{{- define "ganshou.name" -}}ganshou{{- end -}}

{{- define "ganshou.fullname" -}}
{{- if contains "ganshou" .Release.Name -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}{{- else -}}{{ printf "%s-ganshou" .Release.Name | trunc 40 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "ganshou.chart" -}}{{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}{{- end -}}

{{/* Selectors use only name and instance; the name is the component's (ganshou-intake…). */}}
{{- define "ganshou.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-%s" (include "ganshou.name" .root) .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "ganshou.labels" -}}
{{ include "ganshou.selectorLabels" . }}
app.kubernetes.io/component: {{ .name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: ganshou
helm.sh/chart: {{ include "ganshou.chart" .root }}
{{- end -}}

{{- define "ganshou.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}

{{/* The environment every process shares: Kafka, tokens, logging. */}}
{{- define "ganshou.commonEnv" -}}
- name: KAFKA_BOOTSTRAP
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- if .Values.kafka.caSecret }}
- name: KAFKA_CA_FILE
  value: /etc/ganshou/kafka-ca/ca.crt
{{- end }}
{{- if .Values.kafka.saslSecret }}
- name: KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.saslMechanism | quote }}
- name: KAFKA_SASL_USERNAME
  valueFrom: {secretKeyRef: {name: {{ .Values.kafka.saslSecret }}, key: username}}
- name: KAFKA_SASL_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ .Values.kafka.saslSecret }}, key: password}}
{{- end }}
{{- if or .Values.auth.jwks.secret .Values.auth.jwks.configMap }}
- name: GANSHOU_JWKS_FILE
  value: /etc/ganshou/jwks/{{ .Values.auth.jwks.key }}
{{- else if .Values.auth.tokenSecret }}
- name: GANSHOU_TOKEN_SECRET
  valueFrom: {secretKeyRef: {name: {{ .Values.auth.tokenSecret }}, key: secret}}
{{- end }}
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: GANSHOU_TOWN_TIMEZONE
  value: {{ .Values.townTimezone | quote }}
- name: METRICS_PORT
  value: "9100"
- name: HOME
  value: /tmp
{{- end -}}

{{- define "ganshou.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if .Values.kafka.caSecret }}
- name: kafka-ca
  secret: {secretName: {{ .Values.kafka.caSecret }}}
{{- end }}
{{- if .Values.auth.jwks.secret }}
- name: jwks
  secret: {secretName: {{ .Values.auth.jwks.secret }}}
{{- else if .Values.auth.jwks.configMap }}
- name: jwks
  configMap: {name: {{ .Values.auth.jwks.configMap }}}
{{- end }}
{{- if .Values.tls.enabled }}
- name: grpc-tls
  secret: {secretName: {{ .Values.tls.secret }}}
{{- end }}
{{- end -}}

{{- define "ganshou.volumeMounts" -}}
- {name: tmp, mountPath: /tmp}
{{- if .Values.kafka.caSecret }}
- {name: kafka-ca, mountPath: /etc/ganshou/kafka-ca, readOnly: true}
{{- end }}
{{- if or .Values.auth.jwks.secret .Values.auth.jwks.configMap }}
- {name: jwks, mountPath: /etc/ganshou/jwks, readOnly: true}
{{- end }}
{{- if .Values.tls.enabled }}
- {name: grpc-tls, mountPath: /etc/ganshou/grpc-tls, readOnly: true}
{{- end }}
{{- end -}}

{{- define "ganshou.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "ganshou.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities: {drop: [ALL]}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/*
One process of Ganshou: Deployment, Service, ServiceAccount, PodDisruptionBudget, optional
HorizontalPodAutoscaler and a NetworkPolicy.
  dict "root" $ "name" "intake" "module" "ganshou_intake" "command" "serve" "grpc" true
       "spec" .Values.intake "env" (list of extra env entries as YAML string)
*/}}
{{- define "ganshou.component" -}}
{{- $root := .root -}}
{{- $full := printf "%s-%s" (include "ganshou.fullname" $root) .name -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $full }}
  labels: {{- include "ganshou.labels" . | nindent 4 }}
automountServiceAccountToken: false
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $full }}
  labels: {{- include "ganshou.labels" . | nindent 4 }}
spec:
  selector: {{- include "ganshou.selectorLabels" . | nindent 4 }}
  ports:
    {{- if .grpc }}
    - {name: grpc, port: 50051, targetPort: grpc, appProtocol: grpc}
    {{- end }}
    - {name: metrics, port: 9100, targetPort: metrics}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $full }}
  labels: {{- include "ganshou.labels" . | nindent 4 }}
spec:
  {{- if not (and .grpc .spec.hpa .spec.hpa.enabled) }}
  replicas: {{ .spec.replicas }}
  {{- end }}
  selector:
    matchLabels: {{- include "ganshou.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels: {{- include "ganshou.labels" . | nindent 8 }}
    spec:
      serviceAccountName: {{ $full }}
      automountServiceAccountToken: false
      # Longer than the server's own grace (GRPC_GRACE_S), so in-flight RPCs finish.
      terminationGracePeriodSeconds: 30
      securityContext: {{- include "ganshou.podSecurity" $root | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets: {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .name }}
          image: {{ include "ganshou.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: ["python", "-m", {{ .module | quote }}]
          args: [{{ .command | quote }}]
          env:
            {{- include "ganshou.commonEnv" $root | nindent 12 }}
            {{- if .grpc }}
            - {name: GRPC_PORT, value: "50051"}
            - {name: GRPC_GRACE_S, value: "10"}
            {{- if $root.Values.tls.enabled }}
            - {name: GRPC_TLS_CERT, value: /etc/ganshou/grpc-tls/tls.crt}
            - {name: GRPC_TLS_KEY, value: /etc/ganshou/grpc-tls/tls.key}
            {{- if $root.Values.tls.clientAuth }}
            - {name: GRPC_TLS_CLIENT_CA, value: /etc/ganshou/grpc-tls/ca.crt}
            {{- end }}
            {{- end }}
            {{- end }}
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
          ports:
            {{- if .grpc }}
            - {name: grpc, containerPort: 50051}
            {{- end }}
            - {name: metrics, containerPort: 9100}
          {{- if .grpc }}
          startupProbe: {grpc: {port: 50051}, periodSeconds: 2, failureThreshold: {{ div (.spec.startupSeconds | default 120) 2 }}}
          readinessProbe: {grpc: {port: 50051}, periodSeconds: 5}
          livenessProbe: {grpc: {port: 50051}, periodSeconds: 10, failureThreshold: 3}
          {{- else }}
          startupProbe: {httpGet: {path: /metrics, port: metrics}, periodSeconds: 2, failureThreshold: {{ div (.spec.startupSeconds | default 120) 2 }}}
          readinessProbe: {httpGet: {path: /metrics, port: metrics}, periodSeconds: 5}
          livenessProbe: {httpGet: {path: /metrics, port: metrics}, periodSeconds: 10, failureThreshold: 3}
          {{- end }}
          resources: {{- toYaml .spec.resources | nindent 12 }}
          securityContext: {{- include "ganshou.containerSecurity" $root | nindent 12 }}
          volumeMounts: {{- include "ganshou.volumeMounts" $root | nindent 12 }}
      volumes: {{- include "ganshou.volumes" $root | nindent 8 }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $full }}
  labels: {{- include "ganshou.labels" . | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {{- include "ganshou.selectorLabels" . | nindent 6 }}
{{- if and .grpc .spec.hpa .spec.hpa.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $full }}
  labels: {{- include "ganshou.labels" . | nindent 4 }}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: {{ $full }}}
  minReplicas: {{ .spec.hpa.minReplicas }}
  maxReplicas: {{ .spec.hpa.maxReplicas }}
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: {{ .spec.hpa.targetCPU }}}}
{{- end }}
{{- if $root.Values.networkPolicy.enabled }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ $full }}
  labels: {{- include "ganshou.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels: {{- include "ganshou.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    {{- if .grpc }}
    - ports: [{port: 50051, protocol: TCP}]
      from:
        - podSelector:
            matchLabels:
              app.kubernetes.io/instance: {{ $root.Release.Name }}
        {{- with $root.Values.networkPolicy.grpcClients }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    {{- end }}
    - ports: [{port: 9100, protocol: TCP}]
      {{- with $root.Values.networkPolicy.prometheus }}
      from: {{- toYaml . | nindent 8 }}
      {{- end }}
  egress:
    - ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
    - to: {{- toYaml $root.Values.networkPolicy.kafka.peers | nindent 8 }}
      ports:
        {{- range $root.Values.networkPolicy.kafka.ports }}
        - {port: {{ . }}, protocol: TCP}
        {{- end }}
    - to: {{- toYaml $root.Values.networkPolicy.postgres.peers | nindent 8 }}
      ports:
        {{- range $root.Values.networkPolicy.postgres.ports }}
        - {port: {{ . }}, protocol: TCP}
        {{- end }}
{{- end }}
{{- end -}}

{{/* A pre-install/pre-upgrade hook Job applying one service's migrations. */}}
{{- define "ganshou.migrateJob" -}}
{{- $root := .root -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "ganshou.fullname" $root }}-{{ .name }}-migrate
  labels: {{- include "ganshou.labels" (dict "root" $root "name" (printf "%s-migrate" .name)) | nindent 4 }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-5"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: 3
  template:
    metadata:
      labels: {{- include "ganshou.labels" (dict "root" $root "name" (printf "%s-migrate" .name)) | nindent 8 }}
    spec:
      restartPolicy: OnFailure
      automountServiceAccountToken: false
      securityContext: {{- include "ganshou.podSecurity" $root | nindent 8 }}
      containers:
        - name: migrate
          image: {{ include "ganshou.image" $root | quote }}
          command: ["python", "-m", {{ .module | quote }}]
          args: ["migrate"]
          env:
            - name: DATABASE_URL
              valueFrom: {secretKeyRef: {name: {{ .db.secret }}, key: {{ .db.key }}}}
            - {name: HOME, value: /tmp}
          securityContext: {{- include "ganshou.containerSecurity" $root | nindent 12 }}
          volumeMounts: [{name: tmp, mountPath: /tmp}]
      volumes: [{name: tmp, emptyDir: {}}]
{{- end -}}
